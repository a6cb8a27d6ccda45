"""`kmix attack`: robust top-1 under white-box FGSM/PGD and PGD transferred from substitute checkpoints."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_data_args, add_model_args


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="adversarial robustness: FGSM/PGD white-box and PGD from substitutes",
                       description="Robust top-1 accuracy of the target checkpoint: clean, FGSM (white-box), "
                                   "PGD (white-box) and PGD crafted on each --substitute (gray-box when it has the "
                                   "target's architecture, black-box otherwise). L-inf attacks in [0, 1] pixel "
                                   "space (normalisation is inside the model); eps in /255 units. Writes "
                                   "robust.csv, robust.json, robust.png.")
    p.add_argument("--checkpoint", required=True, help="target checkpoint")
    p.add_argument("--substitute", nargs="*", default=[], help="kmix checkpoints to craft transfer PGD on")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--eps", type=float, nargs="+", default=[8.0], help="L-inf radii in /255 units (default: 8)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default: 10)")
    p.add_argument("--step-size", type=float, default=None, help="PGD step in /255 units (default: 2.5*eps/steps)")
    p.add_argument("--no-random-start", action="store_true", help="start PGD at the clean image")
    p.add_argument("--no-whitebox-pgd", action="store_true", help="skip white-box PGD on the target")
    add_model_args(p)
    add_data_args(p, limit=512)
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.robustness import AttackConfig, run_attack

    run_attack(AttackConfig(
        checkpoint=args.checkpoint, substitutes=args.substitute, data=args.data, root=args.data_root, out=args.out,
        eps=args.eps, steps=args.steps, step_size=args.step_size, random_start=not args.no_random_start,
        whitebox_pgd=not args.no_whitebox_pgd, limit=args.limit, batch_size=args.batch_size,
        image_size=args.image_size, arch=args.arch, seed=args.seed, device=args.device, quiet=args.quiet))
    return 0
