"""`kmix sweep`: parse recipes, --set / --vary and seeds into a SweepConfig and call `run_sweep`."""
from __future__ import annotations

import argparse
import json
import re
from fractions import Fraction
from typing import Any

import yaml

_FRACTION = re.compile(r"^[+-]?\d+/\d+$")


def parse_value(text: str) -> Any:
    """A YAML value (3, 0.2, true, [50, 75], a path), or a fraction such as 1/3 as a float."""
    if _FRACTION.match(text.strip()):
        return float(Fraction(text.strip()))
    return yaml.safe_load(text)


def _key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), value


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """--set KEY=VALUE ... -> {key: value}; a key given twice is an error."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, value = _key_value(item, "--set")
        if key in out:
            raise ValueError(f"--set {key} given twice")
        out[key] = parse_value(value)
    return out


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """--vary KEY=V1,V2 ... -> {key: [v1, v2]} (values split on top-level commas: k=3,5 or milestones=[5,8],[10,15])."""
    out: dict[str, list[Any]] = {}
    for item in items or []:
        key, value = _key_value(item, "--vary")
        if key in out:
            raise ValueError(f"--vary {key} given twice")
        try:
            values = yaml.safe_load(f"[{value}]")
        except yaml.YAMLError as err:
            raise ValueError(f"--vary {item!r}: cannot read the values: {err}") from None
        out[key] = [parse_value(v) if isinstance(v, str) else v for v in values]
        if not out[key]:
            raise ValueError(f"--vary {key} has no values")
    return out


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="train a grid of runs (recipes x --vary x seeds), resumable; write the table",
        description="Train every recipe x every combination of --vary values x every seed, one run after another, "
                    "each in OUT/<recipe>[+KEY=VALUE...]/seed<S>. Rerunning the command skips finished runs and "
                    "resumes an interrupted one. Ends with OUT/table.md, table.csv and curves.png (kmix table).")
    p.add_argument("--recipe", nargs="+", default=[], metavar="YAML",
                   help="recipes (TrainConfig keys); none: kmix train's defaults")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="sets",
                   help="a TrainConfig value for every run (YAML; 1/3 is a fraction), repeatable: "
                        "--set epochs=30 --set data_root=data")
    p.add_argument("--vary", action="append", metavar="KEY=V1,V2,...",
                   help="a grid axis, repeatable (every combination is run): --vary k=3,5 --vary alpha=0.2,1/3")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0)")
    p.add_argument("--out", required=True, help="the sweep's folder")
    p.add_argument("--plan", action="store_true", help="list the runs and their progress; train nothing")
    p.add_argument("--no-table", dest="table", action="store_false", help="do not write the table at the end")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.sweep import SweepConfig, run_sweep, sweep_status

    config = SweepConfig(recipes=tuple(args.recipe), overrides=parse_sets(args.sets), grid=parse_grid(args.vary),
                         seeds=tuple(args.seeds), out=args.out, table=args.table)
    if args.plan:
        for row in sweep_status(config):
            print(f"{row['out']}  {row['epochs_done']}/{row['epochs']} epochs")
        return 0
    result = run_sweep(config, log=lambda line: print(line, flush=True))
    print(json.dumps({"out": result["out"], "runs": len(result["runs"]), "failed": len(result["failed"]),
                      "wall_s": round(result["wall_s"], 1), "table": result["table"]}))
    return 1 if result["failed"] else 0
