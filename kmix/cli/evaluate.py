"""`kmix eval`: top-1/top-5 of a checkpoint on any dataset, optionally over a class subset (ImageNet-A/O)."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_analysis_args, build_config


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.analysis.evaluate import EvalConfig

    p = sub.add_parser(name, help="top-1/top-5 on any dataset spec, optionally over a class subset",
                       description="Evaluate a checkpoint on digits, CIFAR or any ImageFolder. With --classes "
                                   "(names/wnids, e.g. ImageNet-A's 200), the logits are restricted to those "
                                   "classes' positions in the model's class order and dataset labels are matched "
                                   "by name; a class the model lacks is an error. Writes eval.json, per_class.csv "
                                   "and per_class.png when --out is given.")
    add_analysis_args(p, EvalConfig, required=("checkpoint",))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.evaluate import EvalConfig, run_eval

    run_eval(build_config(EvalConfig, args))
    return 0
