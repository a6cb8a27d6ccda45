"""`kmix ood`: OOD detection by max-softmax probability (AUPR with OOD as positives, AUROC, FPR@95TPR)."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_analysis_args, build_config


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.analysis.ood import OODConfig

    p = sub.add_parser(name, help="OOD detection with max-softmax probability: AUPR, AUROC, FPR@95TPR",
                       description="ImageNet-O style: OOD images are the positive class, the anomaly score is the "
                                   "negated max-softmax probability (over the --classes subset's logits when "
                                   "given; in-data is then restricted to those classes). AUPR = average "
                                   "precision (scikit-learn). FPR@95TPR: fraction of in-distribution images "
                                   "flagged at the threshold detecting 95% of OOD images. Writes ood.json, "
                                   "scores.csv, ood.png.")
    add_analysis_args(p, OODConfig, required=("checkpoint", "ood_data", "out"))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.ood import OODConfig, run_ood

    run_ood(build_config(OODConfig, args))
    return 0
