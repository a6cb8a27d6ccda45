"""`kmix ood`: OOD detection by max-softmax probability (AUPR with OOD as positives, AUROC, FPR@95TPR)."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_data_args, add_model_args


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="OOD detection with max-softmax probability: AUPR, AUROC, FPR@95TPR",
                       description="ImageNet-O style: OOD images are the positive class, the anomaly score is the "
                                   "negated max-softmax probability (over the --classes subset's logits when "
                                   "given; in-data is then restricted to those classes). AUPR = average "
                                   "precision (scikit-learn). FPR@95TPR: fraction of in-distribution images "
                                   "flagged at the threshold detecting 95% of OOD images. Writes ood.json, "
                                   "scores.csv, ood.png.")
    p.add_argument("--checkpoint", required=True, help="checkpoint to evaluate")
    p.add_argument("--in-data", default="digits", help="in-distribution dataset spec (default: digits)")
    p.add_argument("--ood-data", required=True, help="OOD dataset spec, e.g. an ImageFolder path (ImageNet-O)")
    p.add_argument("--classes", default=None, help="class-subset file (names/wnids, one per line, or JSON list)")
    p.add_argument("--out", required=True, help="output folder")
    add_model_args(p, plain_classes=True)
    add_data_args(p, limit=1000, flag="")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.ood import OODConfig, run_ood

    run_ood(OODConfig(
        checkpoint=args.checkpoint, ood_data=args.ood_data, in_data=args.in_data, root=args.data_root, out=args.out,
        classes=args.classes, model_classes=args.model_classes, arch=args.arch, num_classes=args.num_classes,
        limit=args.limit, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed,
        device=args.device, quiet=args.quiet))
    return 0
