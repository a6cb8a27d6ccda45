"""The pruning curve (paper Fig. 5a, and the data-pruning literature's comparison table): test error of
models trained from scratch on per-class subsets chosen by each method, against the kept fraction T,
mean +- std over seeds, plus the full-data point, under an equal-epochs and/or an equal-steps budget.

Every training run is a sweep run (`kmix.sweep`): one TrainConfig (kmix train's defaults < `recipe` <
`train`, the same layering as `kmix sweep --recipe/--set`) with per-run overrides: the seed, the run
folder, the subset, and the epochs of an equal-steps run. `kmix.sweep.runner.train_runs` trains them, so
a finished run is skipped and an interrupted one resumed from its last.pt, each folder checked against
its settings. This module declares no training field.

A method is `BY[:ORDER][:SAMPLING]`: BY is a baseline (random, mc-dropout, k-center) or a score
column of any registered score method (cv, mean, std of kmix-cv; el2n; grand; entropy; margin;
forgetting; aum; dyn-unc), ORDER high/low (default: the column's own hard end) and SAMPLING
top/bottom/interval/ccs (default top), e.g. `cv`, `cv:ccs`, `el2n:ccs`, `aum:ccs`, `mean:low`.
Every score method needed is run once into `OUT/scores_<method>.csv` (kmix-cv: `OUT/scores.csv`):
checkpoint methods on the scoring checkpoint (`checkpoint`, else the first seed's full-data
`last.pt`), training-dynamics methods on one recorded run (`dynamics_run`, else the first seed's
full-data run, which is then trained with `record_dynamics`). A scores or subset file already written
is reused; kmix-cv scoring continues from its chunks.

Outputs: `table.md`/`table.csv` (`kmix table` over the runs, the subset replaced by the budget, method
and ratio axes), `runs.csv` (one row per finished run, read from its folder) and the curve view of it,
`curve.csv`, `curve.md` (a column per ratio) and `curve.png`.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kmix.io import atomic_write, write_csv_atomic, write_json_atomic, write_text_atomic
from kmix.options import option, quiet_option
from kmix.runs import check_resume, lock_run_folder
from kmix.select.kmix_cv import ScoreSpec
from kmix.select.methods import SCORE_METHODS, column_orders, get_score_method, score_method_names
from kmix.select.score import run_score
from kmix.select.score_config import ScoreConfig
from kmix.select.score_method import DYN_UNC_WINDOW
from kmix.select.subsample import BASELINES, CCS_BINS, ORDERS, SAMPLINGS, SubsampleConfig, run_subsample
from kmix.sweep.plan import SWEEP_DEFAULTS, PlannedRun
from kmix.sweep.runfolder import RunFolder, read_run
from kmix.sweep.runner import train_runs
from kmix.sweep.table import Table, build_table, write_table_files
from kmix.train.config import TrainConfig, recipe_values

BUDGETS = ("epochs", "steps")  # equal epochs for every run, or as many optimiser steps as a full-data run
RUN_COLUMNS = ("budget", "method", "ratio", "seed", "n_train", "epochs", "top1_err", "best_top1_err", "wall_s",
               "subset")
CURVE_COLUMNS = ("budget", "method", "ratio", "n_train", "n_seeds", "err_mean", "err_std", "err_min", "err_max")
FULL = "full"  # the method name of the full-data runs; their budget is "any" (the same run serves both)
PER_RUN = ("seed", "out", "resume", "subset")  # TrainConfig fields the curve sets per run; `train` may not


def _score_columns() -> dict[str, str]:
    """{score column: registered score method}, over every registered method."""
    return {c: m for m in score_method_names() for c in SCORE_METHODS[m].columns}


def parse_method(spec: str) -> tuple[str, str, str]:
    """'cv' | 'cv:ccs' | 'mean:low' | 'cv:high:interval' -> (by, order, sampling).

    ORDER and SAMPLING may come in either order, each at most once; ORDER defaults to the column's
    default end (the registry's: high for cv, low for aum and margin), SAMPLING to top."""
    by, *rest = spec.split(":")
    orders = column_orders()
    order = sampling = None
    ok = by in BASELINES or by in orders
    for token in rest:
        if token in ORDERS and order is None:
            order = token
        elif token in SAMPLINGS and sampling is None:
            sampling = token
        else:
            ok = False
    if not ok:
        raise ValueError(f"bad method {spec!r}: use BY[:ORDER][:SAMPLING] with BY a baseline "
                         f"({', '.join(BASELINES)}) or a score column ({', '.join(orders)}), ORDER in "
                         f"{', '.join(ORDERS)}, SAMPLING in {', '.join(SAMPLINGS)}")
    return by, order or orders.get(by, "high"), sampling or "top"


def score_method_of(spec: str) -> str | None:
    """The registered score method that writes method `spec`'s column, or None for a baseline."""
    by = parse_method(spec)[0]
    return None if by in BASELINES else _score_columns()[by]


def scores_path(out: Path, method: str) -> Path:
    """Where a prune-curve folder keeps `method`'s scores (kmix-cv's keeps its historical name)."""
    return out / ("scores.csv" if method == "kmix-cv" else f"scores_{method}.csv")


@dataclass
class PruneCurveConfig:
    """`kmix prune-curve`: subsets by each method at each ratio, one fresh training run per seed and budget.

    train: TrainConfig values of every run (over `recipe`, a YAML file of TrainConfig keys; unset
    fields are kmix train's defaults); the curve sets seed, out, resume and subset per run.
    checkpoint: scoring model of checkpoint methods (None: the first seed's full-data run);
    dynamics_run: recorded run of training-dynamics methods (None: the first seed's full-data run,
    trained with record_dynamics); budgets: "epochs" (every run `epochs` epochs) and/or "steps"
    (a subset run max(epochs, round(epochs * N / n)) epochs: a full-data run's steps); evals_per_run:
    None = the runs' eval_every, else about this many evaluations per run (the last epoch always);
    ccs_beta/ccs_bins: CCS options (None: `ccs_default_beta`); dyn_unc_window: Dyn-Unc's J.
    Data, device and threads of scoring and subsampling are the runs'.
    """

    train: dict[str, Any] = option({}, "TrainConfig values of every run", cli=False)
    recipe: str | None = option(None, "YAML recipe of TrainConfig keys for every run (kmix train's flags given "
                                      "here win over it)", metavar="YAML")
    checkpoint: str | None = option(None, "scoring model of checkpoint score methods",
                                    default_text="the first seed's full-data run")
    dynamics_run: str | None = option(None, "run folder recorded with kmix train --record-dynamics, for "
                                            "forgetting/aum/dyn-unc", default_text="the first seed's full-data run, "
                                            "trained with --record-dynamics")
    ratios: tuple[float, ...] = option((0.1, 0.3, 0.5), "kept fractions T, comma-separated")
    methods: tuple[str, ...] = option(("cv", "random"), "comma-separated BY[:ORDER][:SAMPLING]: BY a score column (cv, "
                                      "mean, std, el2n, grand, entropy, margin, forgetting, aum, dyn-unc) or "
                                      + ", ".join(BASELINES) + "; ORDER high/low (default: the column's hard end); "
                                      "SAMPLING top/bottom/interval/ccs (default top), e.g. "
                                      "random,cv,cv:ccs,el2n:ccs,forgetting:ccs,aum:ccs")
    seeds: tuple[int, ...] = option((0, 1), "training seeds, comma-separated")
    full: bool = option(True, "train the full-data runs, the T = 1 point (off needs --checkpoint)")
    budgets: tuple[str, ...] = ("epochs",)
    evals_per_run: int | None = option(None, "evaluate about this many times per run, the last epoch always",
                                       default_text="the runs' --eval-every")
    score: ScoreSpec = field(default_factory=ScoreSpec)
    ccs_beta: float | None = option(None, "CCS hard-cut fraction",
                                    default_text="kmix subsample's, 0.3 at T <= 0.1 ... 0 at T >= 0.5")
    ccs_bins: int = option(CCS_BINS, "CCS strata")
    dyn_unc_window: int = option(DYN_UNC_WINDOW, "Dyn-Unc window J in epochs")
    out: str = option("prune_curve", "output folder")
    quiet: bool = quiet_option(True)

    def base_config(self) -> TrainConfig:
        """The one TrainConfig every run starts from: the sweep's defaults < recipe < train (validated)."""
        if not isinstance(self.train, dict):
            raise TypeError(f"train must be a mapping of TrainConfig keys, got {type(self.train).__name__}")
        train = {str(k).replace("-", "_"): v for k, v in self.train.items()}
        owned = sorted(set(train) & set(PER_RUN))
        if owned:
            raise ValueError(f"train may not set {', '.join(owned)}: prune-curve sets it per run (seeds with --seeds, "
                             "folders under --out, subsets by --methods and --ratios)")
        recipe = recipe_values(self.recipe) if self.recipe is not None else {}
        for name in PER_RUN:
            recipe.pop(name, None)  # a recipe written for kmix train may name them: the curve's own win
        if "model_kwargs" in recipe and "model_kwargs" in train:  # as kmix train: --model-arg over the recipe's
            train["model_kwargs"] = {**recipe["model_kwargs"], **train["model_kwargs"]}
        return TrainConfig.from_dict({**SWEEP_DEFAULTS, **recipe, **train}, source="prune-curve training settings")

    def validate(self) -> TrainConfig:
        """Raise naming the bad field before any work; return the runs' base TrainConfig."""
        base = self.base_config()
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios):
            raise ValueError(f"ratios must be in (0, 1], got {list(self.ratios)}")
        if not self.methods:
            raise ValueError("methods is empty")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must not repeat, got {list(self.methods)}")
        for m in self.methods:
            parse_method(m)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list without repeats, got {list(self.seeds)}")
        if not self.budgets or len(set(self.budgets)) != len(self.budgets) or set(self.budgets) - set(BUDGETS):
            raise ValueError(f"budgets must be one or both of {', '.join(BUDGETS)}, got {list(self.budgets)}")
        if self.evals_per_run is not None and (isinstance(self.evals_per_run, bool) or self.evals_per_run < 1):
            raise ValueError(f"evals_per_run must be an int >= 1 or None (every epoch), got {self.evals_per_run!r}")
        if self.checkpoint is None and not self.full:
            raise ValueError("without --checkpoint the scoring model is the full-data run: do not disable it")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {self.checkpoint}")
        needs = {score_method_of(m) for m in self.methods} - {None}
        run_methods = sorted(m for m in needs if _needs_run(m))
        if run_methods and self.dynamics_run is None and not self.full:
            raise ValueError(f"method(s) {', '.join(run_methods)} read a recorded training run: give --dynamics-run "
                             "or keep the full-data runs (the first seed's is then recorded)")
        if self.dynamics_run is not None and not (Path(self.dynamics_run) / "dynamics.pt").is_file():
            raise FileNotFoundError(f"dynamics run {self.dynamics_run} has no dynamics.pt (train it with "
                                    "kmix train --record-dynamics)")
        if "dyn-unc" in needs and self.dynamics_run is None and base.epochs <= self.dyn_unc_window:
            raise ValueError(f"dyn-unc with a window of {self.dyn_unc_window} epochs needs a recorded run of more "
                             f"than {self.dyn_unc_window} epochs, but epochs={base.epochs}: lower --dyn-unc-window")
        return base


def _needs_run(method: str) -> bool:
    return get_score_method(method).needs == "run"


# curve settings that decide the scores and subsets: a rerun into the same --out must keep them (the runs' training
# settings are checked per run folder, as kmix sweep does)
RUN_DEFINING = ("data", "checkpoint", "dynamics_run", "score", "ccs_beta", "ccs_bins", "dyn_unc_window")


def _defaults() -> dict:
    """JSON-normalised default of every curve setting (for config.json files that predate one)."""
    out = {}
    for f in fields(PruneCurveConfig):
        value = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        out[f.name] = asdict(value) if f.name == "score" else value
    out["data"] = TrainConfig.__dataclass_fields__["data"].default
    return json.loads(json.dumps(out))


def subset_epochs(epochs: int, n_total: int, n_train: int, equal_steps: bool) -> int:
    """Epochs for a subset run: `epochs`, or with equal_steps max(epochs, round(epochs * n_total / n_train))."""
    return max(epochs, round(epochs * n_total / n_train)) if equal_steps else epochs


def _check_same_settings(path: Path, settings: dict) -> None:
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("equal_steps"):
            raise ValueError(f"{path.parent} holds a curve made with --equal-steps by an older kmix (its run folders "
                             "are not named by budget); choose another --out")
        check_resume(old, settings, RUN_DEFINING, source=path.parent, what="curve", defaults=_defaults())


def read_runs(path: Path) -> list[dict]:
    """The rows of a curve's runs.csv (none when it doesn't exist yet)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # runs.csv files that predate budgets hold equal-epochs runs
        r.setdefault("budget", "any" if r["method"] == FULL else "epochs")
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """Per (budget, method, ratio): mean, sample std (ddof=1; 0 for one seed), min and max of top-1 error over seeds."""
    groups: dict[tuple[str, str, float], list[dict]] = {}
    for r in rows:
        budget = r.get("budget", "any" if r["method"] == FULL else "epochs")
        groups.setdefault((budget, r["method"], float(r["ratio"])), []).append(r)
    out = []
    for (budget, method, ratio), rs in sorted(groups.items()):
        errs = np.array([float(r["top1_err"]) for r in rs])
        out.append({"budget": budget, "method": method, "ratio": ratio, "n_train": int(rs[0]["n_train"]),
                    "n_seeds": len(rs), "err_mean": float(errs.mean()),
                    "err_std": float(errs.std(ddof=1)) if len(errs) > 1 else 0.0,
                    "err_min": float(errs.min()), "err_max": float(errs.max())})
    return out


def _budget_title(budget: str, epochs: int) -> str:
    return (f"equal epochs: every run {epochs} epochs" if budget == "epochs" else
            f"equal steps: a subset of n images trains max({epochs}, round({epochs} N / n)) epochs")


def plot_curve(curve: list[dict], path: Path, title: str, budgets: tuple[str, ...] = ("epochs",),
               epochs: int | None = None) -> None:
    """Error vs T per method (mean +- std bars), one panel per budget, the full-data error as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 4), squeeze=False)
    full = [c for c in curve if c["method"] == FULL]
    for ax, budget in zip(axes[0], budgets):
        rows = [c for c in curve if c["budget"] == budget]
        for method in dict.fromkeys(c["method"] for c in rows):
            pts = sorted((c for c in rows if c["method"] == method), key=lambda c: c["ratio"])
            ax.errorbar([c["ratio"] for c in pts], [c["err_mean"] for c in pts], yerr=[c["err_std"] for c in pts],
                        marker="o", capsize=3, label=method)
        if full:
            ax.axhline(full[0]["err_mean"], color="k", ls="--", lw=1, label=f"full data ({full[0]['err_mean']:.2f}%)")
        ax.set_xlabel("kept fraction T per class")
        ax.set_ylabel("test top-1 error (%)")
        ax.set_title(f"{title}\n{_budget_title(budget, epochs) if epochs else budget}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def markdown_table(curve: list[dict], methods: tuple[str, ...], budgets: tuple[str, ...], epochs: int,
                   seeds: tuple[int, ...]) -> str:
    """One markdown table per budget: a row per method (score column, order, sampling), a column per ratio
    and the full-data column; cells are test top-1 error in %, mean +- std (ddof 1) over the seeds."""
    full = next((c for c in curve if c["method"] == FULL), None)
    ratios = sorted({c["ratio"] for c in curve if c["method"] != FULL})
    n_at = {c["ratio"]: c["n_train"] for c in curve if c["method"] != FULL}
    cell = {(c["budget"], c["method"], c["ratio"]): c for c in curve}

    def fmt(c):
        if c is None:
            return "—"
        seeds_note = "" if c["n_seeds"] == len(seeds) else f" ({c['n_seeds']} seed{'s' if c['n_seeds'] > 1 else ''})"
        return f"{c['err_mean']:.2f} ± {c['err_std']:.2f}{seeds_note}"

    lines = []
    for budget in budgets:
        lines += [f"**{_budget_title(budget, epochs)}** — test top-1 error (%), mean ± std over seeds "
                  f"{', '.join(map(str, seeds))}", ""]
        header = ["method", "ranked by", "sampling"] + [f"T={r:g} (n={n_at[r]})" for r in ratios]
        if full is not None:
            header.append(f"full (n={full['n_train']})")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]
        for m in methods:
            by, order, sampling = parse_method(m)
            unranked = by in ("random", "k-center")
            row = [f"`{m}`", "—" if unranked else f"{by} ({order} first)", "—" if unranked else sampling]
            row += [fmt(cell.get((budget, m, r))) for r in ratios] + ([""] if full is not None else [])
            lines.append("| " + " | ".join(row) + " |")
        if full is not None:
            lines.append("| all data | — | — | " + " | ".join([""] * len(ratios) + [fmt(full)]) + " |")
        lines.append("")
    return "\n".join(lines)


def write_curve(out: Path, rows: list[dict], *, data: str, model: str, mix: str, seeds, methods, ratios, budgets,
                epochs: int) -> tuple[list[dict], str]:
    """curve.csv, curve.png and curve.md in `out` from the runs' rows (runs.csv) of these methods, ratios and
    budgets (and the full-data runs); returns (the aggregated curve, the markdown table)."""
    kept = {f"{float(x):g}" for x in ratios}
    curve = aggregate([r for r in rows if r["method"] == FULL or (
        r["budget"] in budgets and r["method"] in methods and f"{float(r['ratio']):g}" in kept)])
    write_csv_atomic(out / "curve.csv", CURVE_COLUMNS,
                     [[c[k] if not isinstance(c[k], float) else round(c[k], 4) for k in CURVE_COLUMNS] for c in curve])
    title = f"{data} / {model} / mix {mix}, {len(seeds)} seed(s)"
    plot_curve(curve, out / "curve.png", title, tuple(budgets), epochs)
    table = markdown_table(curve, tuple(methods), tuple(budgets), epochs, tuple(seeds))
    write_text_atomic(out / "curve.md", f"# {title}\n\n{table}")
    return curve, table


def run_prune_curve(config: PruneCurveConfig, *, log: Callable[[str], None] | None = None) -> dict:
    """Train the full-data and subset runs as sweep runs (skipping finished ones), score once per score method,
    write table.md/table.csv (kmix table with the ratio axis), runs.csv, curve.csv, curve.png and curve.md.

    `log` gets one progress line per run (default: print, unless `config.quiet`)."""
    base = config.validate()
    if log is None:
        log = (lambda line: None) if config.quiet else (lambda line: print(line, flush=True))
    with lock_run_folder(config.out, "kmix prune-curve"):
        return _run_prune_curve(config, base, log)


@dataclass(frozen=True)
class CurveRun:
    """One run of the curve: where it sits on the axes (budget, method, ratio) and the sweep run that trains it."""

    budget: str
    method: str
    ratio: float
    run: PlannedRun
    subset: str | None = None
    n_train: int | None = None  # the subset's size (None for a full-data run: the training set's)


def _planned(base: TrainConfig, label: str, seed: int, run_dir: Path, evals_per_run: int | None,
             **changes: Any) -> PlannedRun:
    """A sweep run: the base config with this run's seed, folder (resumed when it holds the run) and `changes`."""
    values = {**base.to_dict(), **changes, "seed": seed, "out": str(run_dir), "resume": True}
    if evals_per_run is not None:
        values["eval_every"] = max(1, math.ceil(values["epochs"] / evals_per_run))
    config = TrainConfig.from_dict(values, source=f"prune-curve run {label} seed {seed}")
    return PlannedRun(label, seed, run_dir, config)


def _run_prune_curve(config: PruneCurveConfig, base: TrainConfig, log: Callable[[str], None]) -> dict:
    out = Path(config.out)
    t0 = time.perf_counter()
    settings = json.loads(json.dumps({**asdict(config), "score": asdict(config.score), "data": base.data,
                                      "model": base.model, "mix": base.mix, "epochs": base.epochs,
                                      "train": base.to_dict()}))  # JSON-normalised; data..epochs for readers
    _check_same_settings(out / "config.json", settings)
    write_json_atomic(out / "config.json", settings)

    score_methods = list(dict.fromkeys(s for s in map(score_method_of, config.methods) if s is not None))
    record_full = config.dynamics_run is None and any(_needs_run(m) for m in score_methods)
    first = config.seeds[0]
    first_full = out / "runs" / FULL / f"seed{first}"
    checkpoint = config.checkpoint or str(first_full / "last.pt")
    dynamics_run = config.dynamics_run or str(first_full)

    def full_run(seed: int) -> CurveRun:
        record = base.record_dynamics or (record_full and seed == first)
        return CurveRun("any", FULL, 1.0, _planned(base, FULL, seed, out / "runs" / FULL / f"seed{seed}",
                                                    config.evals_per_run, record_dynamics=record))

    def train(runs: list[CurveRun]) -> None:
        _, failed = train_runs([r.run for r in runs], log=log)
        for f in failed:
            log(f"prune-curve: run {f['label']} seed {f['seed']} diverged ({f['error']}); left out of the curve")

    if config.full and (config.checkpoint is None or record_full):  # the scoring model / recorded run comes first
        train([full_run(first)])
        if record_full and not (first_full / "dynamics.pt").is_file():
            raise ValueError(f"{first_full} was trained without --record-dynamics (an earlier prune-curve into this "
                             "--out without training-dynamics methods); choose another --out or pass --dynamics-run")

    for method in score_methods:  # each score method once
        path = scores_path(out, method)
        if path.is_file():
            continue
        common = dict(data=base.data, data_root=base.data_root, out=str(path), method=method, device=base.device,
                      quiet=config.quiet, rank=0, world_size=1)
        if _needs_run(method):
            run_score(ScoreConfig(run_dir=dynamics_run, dyn_unc_window=config.dyn_unc_window, **common))
        else:
            run_score(ScoreConfig(checkpoint=checkpoint, spec=config.score, **common))

    n_total = None  # the training set's size, from the subset files
    runs: list[CurveRun] = []  # seed-major: a complete one-seed curve exists before the second seed starts
    for seed in config.seeds:
        runs += [full_run(seed)] if config.full else []
        for method in config.methods:
            by, order, sampling = parse_method(method)
            name = score_method_of(method)
            for ratio in config.ratios:
                tag = f"{method.replace(':', '-')}_T{float(ratio):g}_s{seed}"
                subset = out / "subsets" / f"{tag}.json"  # the same subset serves every budget
                if subset.is_file():
                    chosen = json.loads(subset.read_text())
                else:
                    chosen = run_subsample(SubsampleConfig(
                        ratio=float(ratio), out=str(subset), by=by, order=order, sampling=sampling, seed=seed,
                        scores=str(scores_path(out, name)) if name is not None else None,
                        checkpoint=checkpoint if BASELINES.get(by) == "model" else None,
                        ccs_beta=config.ccs_beta, ccs_bins=config.ccs_bins, data=base.data,
                        data_root=base.data_root, device=base.device, quiet=True))
                for budget in config.budgets:
                    epochs = subset_epochs(base.epochs, chosen["n_total"], chosen["n_selected"], budget == "steps")
                    run = _planned(base, f"{budget} {method} T={float(ratio):g}", seed,
                                   out / "runs" / budget / tag, config.evals_per_run, subset=str(subset),
                                   epochs=epochs)
                    runs.append(CurveRun(budget, method, float(ratio), run, str(subset), chosen["n_selected"]))
                n_total = chosen["n_total"]
    train(runs)

    finished = [(r, read_run(r.run.out)) for r in runs]
    finished = [(r, f) for r, f in finished if f.finished]
    rows = [{"budget": r.budget, "method": r.method, "ratio": f"{r.ratio:g}", "seed": r.run.seed,
             "n_train": n_total if r.n_train is None else r.n_train, "epochs": f.summary["epochs"],
             "top1_err": f.summary.get(f.prefix + "top1_err"),
             "best_top1_err": f.summary.get(f"best_{f.prefix}top1_err"),
             "wall_s": f.summary.get("wall_s"), "subset": r.subset or ""} for r, f in finished]
    write_csv_atomic(out / "runs.csv", RUN_COLUMNS, [[row.get(c, "") for c in RUN_COLUMNS] for row in rows])
    write_table_files(curve_table(finished), out, plot=False)
    curve, md = write_curve(out, rows, data=base.data, model=base.model, mix=base.mix, seeds=config.seeds,
                            methods=config.methods, ratios=config.ratios, budgets=config.budgets, epochs=base.epochs)
    return {"out": str(out), "curve": curve, "table": md, "runs": len(rows),
            "wall_s": round(time.perf_counter() - t0, 1)}


def curve_table(runs: list[tuple[CurveRun, RunFolder]]) -> Table:
    """`kmix table` over the curve's finished run folders, with the subset file replaced by its axes (budget,
    method, ratio) so that the seeds of one point pool. record_dynamics is dropped from the key: recording reads
    the model in eval mode and changes nothing the run trains (the first seed's full-data run records)."""
    folders = []
    for r, folder in runs:
        config = {k: v for k, v in folder.config.items() if k not in ("subset", "record_dynamics")}
        folder.config = {**config, "budget": r.budget, "method": r.method, "ratio": r.ratio}
        folders.append(folder)
    return build_table(folders)
