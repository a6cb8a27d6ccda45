"""`kmix attack`: robust top-1 under white-box FGSM/PGD and PGD transferred from substitute checkpoints."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_analysis_args, build_config


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.analysis.robustness import AttackConfig

    p = sub.add_parser(name, help="adversarial robustness: FGSM/PGD white-box and PGD from substitutes",
                       description="Robust top-1 accuracy of the target checkpoint: clean, FGSM (white-box), "
                                   "PGD (white-box) and PGD crafted on each --substitute (gray-box when it has the "
                                   "target's architecture, black-box otherwise). L-inf attacks in [0, 1] pixel "
                                   "space (normalisation is inside the model); eps in /255 units. Writes "
                                   "robust.csv, robust.json, robust.png.")
    add_analysis_args(p, AttackConfig, required=("checkpoint", "out"))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.robustness import AttackConfig, run_attack

    run_attack(build_config(AttackConfig, args))
    return 0
