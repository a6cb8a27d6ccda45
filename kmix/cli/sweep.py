"""`kmix sweep`: recipes, --set / --vary and seeds into a SweepConfig (its fields are the options), then `run_sweep`."""
from __future__ import annotations

import argparse
import json

from kmix.cli.config_args import add_config_args, given_values


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.sweep import SweepConfig

    p = sub.add_parser(
        name, help="train a grid of runs (recipes x --vary x seeds), resumable; write the table",
        description="Train every recipe x every combination of --vary values x every seed, one run after another, "
                    "each in OUT/<recipe>[+KEY=VALUE...]/seed<S>. Rerunning the command skips finished runs and "
                    "resumes an interrupted one. Ends with OUT/table.md, table.csv and curves.png (kmix table).")
    add_config_args(p, SweepConfig, required=("out",))
    p.add_argument("--plan", action="store_true", help="list the runs and their progress; train nothing")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.sweep import SweepConfig, run_sweep, sweep_status

    config = SweepConfig(**given_values(args, SweepConfig))
    if args.plan:
        for row in sweep_status(config):
            print(f"{row['out']}  {row['epochs_done']}/{row['epochs']} epochs")
        return 0
    result = run_sweep(config, log=lambda line: print(line, flush=True))
    print(json.dumps({"out": result["out"], "runs": len(result["runs"]), "failed": len(result["failed"]),
                      "wall_s": round(result["wall_s"], 1), "table": result["table"]}))
    return 1 if result["failed"] else 0
