"""`kmix eval`: top-1/top-5 of a checkpoint on any dataset, optionally over a class subset (ImageNet-A/O)."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_data_args, add_model_args


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="top-1/top-5 on any dataset spec, optionally over a class subset",
                       description="Evaluate a checkpoint on digits, CIFAR or any ImageFolder. With --classes "
                                   "(names/wnids, e.g. ImageNet-A's 200), the logits are restricted to those "
                                   "classes' positions in the model's class order and dataset labels are matched "
                                   "by name; a class the model lacks is an error. Writes eval.json, per_class.csv "
                                   "and per_class.png when --out is given.")
    p.add_argument("--checkpoint", required=True, help="checkpoint to evaluate")
    p.add_argument("--classes", default=None, help="class-subset file (names/wnids, one per line, or JSON list)")
    p.add_argument("--out", default=None, help="output folder (default: print only)")
    add_model_args(p, plain_classes=True)
    add_data_args(p, limit=None, batch_size=256)
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.evaluate import EvalConfig, run_eval

    run_eval(EvalConfig(
        checkpoint=args.checkpoint, data=args.data, root=args.data_root, out=args.out, classes=args.classes,
        model_classes=args.model_classes, arch=args.arch, num_classes=args.num_classes, limit=args.limit,
        batch_size=args.batch_size, image_size=args.image_size, seed=args.seed, device=args.device,
        quiet=args.quiet))
    return 0
