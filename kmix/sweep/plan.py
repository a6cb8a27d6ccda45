"""What a sweep will run: recipes x grid values x seeds, each a validated TrainConfig in its own folder.

Every run is planned (and its config validated) before the first one trains, so a typo in a key or
a step schedule whose milestones lie past the last epoch fails at once, not hours into the sweep.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmix.options import KeyValueAction, option, parse_key_value, parse_key_values
from kmix.train.config import TrainConfig, recipe_values

# set per run by the sweep itself; a recipe or --set may not choose them
SWEEP_OWNED = ("seed", "out", "resume")
# the sweep's defaults below the recipe: one progress line per run instead of per-epoch output
SWEEP_DEFAULTS: dict[str, Any] = {"quiet": True}


@dataclass
class SweepConfig:
    """`kmix sweep`: every recipe (none = TrainConfig's defaults) x every combination of `grid` x every seed."""

    recipes: tuple[str, ...] = option((), "recipes (YAML files of TrainConfig keys); none: kmix train's defaults",
                                      flag="--recipe", metavar="YAML")
    overrides: dict[str, Any] = option({}, "a TrainConfig value for every run (YAML; 1/3 is a fraction), repeatable: "
                                           "--set epochs=30 --set data_root=data", flag="--set",
                                       type=parse_key_value, action=KeyValueAction, metavar="KEY=VALUE")
    grid: dict[str, list[Any]] = option({}, "a grid axis, repeatable (every combination is run): --vary k=3,5 "
                                             "--vary alpha=0.2,1/3", flag="--vary", type=parse_key_values,
                                        action=KeyValueAction, metavar="KEY=V1,V2,...")
    seeds: tuple[int, ...] = option((0,), "training seeds")
    out: str = option("runs/sweep", "the sweep's folder")
    table: bool = option(True, "write table.md, table.csv and curves.png (kmix table) when the sweep ends")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "SweepConfig":
        """Raise ValueError/TypeError naming the bad field."""
        if not isinstance(self.seeds, (list, tuple)) or not self.seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers, got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must not repeat, got {list(self.seeds)}")
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"out must be a folder path, got {self.out!r}")
        for name in ("overrides", "grid"):
            mapping = getattr(self, name)
            if not isinstance(mapping, dict):
                raise TypeError(f"{name} must be a mapping of config keys, got {type(mapping).__name__}")
            mapping = {str(k).replace("-", "_"): v for k, v in mapping.items()}  # as TrainConfig reads them
            setattr(self, name, mapping)
            owned = sorted(set(mapping) & set(SWEEP_OWNED))
            if owned:
                raise ValueError(f"{name} may not set {', '.join(owned)}: the sweep sets it per run "
                                 f"(seeds with --seeds, the folder with --out)")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"grid {key!r} must be a non-empty list of values, got {values!r}")
        both = sorted(set(self.overrides) & set(self.grid))
        if both:
            raise ValueError(f"{', '.join(both)} given both as a fixed override and as a grid axis")
        return self


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep: a label shared by its seeds, the seed, its folder and its full config."""

    label: str
    seed: int
    out: Path
    config: TrainConfig


def plan_sweep(config: SweepConfig) -> list[PlannedRun]:
    """The sweep's runs, seed-major (all of seed 0 first: a one-seed table exists early), configs validated."""
    config.validate()
    out = Path(config.out)
    sources = [(Path(r).stem, recipe_values(r)) for r in config.recipes] or [("default", {})]
    stems = [s for s, _ in sources]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"recipes with the same file name {', '.join(dup)}: their runs would share a folder")
    axes = list(config.grid.items())
    combos = list(itertools.product(*[values for _, values in axes])) if axes else [()]
    runs, labels = [], {}
    for seed in config.seeds:
        for stem, recipe in sources:
            for combo in combos:
                chosen = {key: value for (key, _), value in zip(axes, combo)}
                label = stem + "".join(f"+{_slug(k)}={_slug(v)}" for k, v in chosen.items())
                where = f"run {label} seed {seed}"
                values = {**SWEEP_DEFAULTS, **recipe, **config.overrides, **chosen}
                run_dir = out / label / f"seed{seed}"
                cfg = TrainConfig.from_dict({**values, "seed": seed, "out": str(run_dir), "resume": True},
                                            source=where)
                key = (label, seed)
                if key in labels:
                    raise ValueError(f"{where}: two grid points give the same folder {run_dir} "
                                     f"({labels[key]} and {chosen}); use values that differ in their text")
                labels[key] = chosen
                runs.append(PlannedRun(label, seed, run_dir, cfg))
    return runs


def _slug(value: Any) -> str:
    """A short folder-safe text for a key or value (1/3 -> 0.333333, [1, 2] -> 1_2, a/b.json -> a_b.json)."""
    if isinstance(value, float):
        value = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        value = "_".join(str(v) for v in value)
    text = re.sub(r"[^A-Za-z0-9.]+", "_", str(value)).strip("_")
    return text or "_"
