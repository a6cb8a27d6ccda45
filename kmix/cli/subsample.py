"""`kmix subsample`: keep a fraction T of each class by a score, at random, or by a coreset; write subset.json."""
from __future__ import annotations

import argparse
import json


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.subsample import METHODS, ORDERS, SAMPLINGS

    p = sub.add_parser(name, help="choose a per-class training subset from scores (or a baseline)",
                       description="Per class keep n_c = max(1, floor(T*N_c + 0.5)) images: the top (or evenly "
                                   "spaced) ranks of a score (cv, mean, std from kmix score; mc-dropout entropy), "
                                   "random, or a k-center coreset of penultimate features. Writes "
                                   "{\"indices\": [...], ...} for kmix train --subset.")
    p.add_argument("--scores", default=None, help="scores file from kmix score (needed for cv/mean/std)")
    p.add_argument("--ratio", type=float, required=True, help="fraction T in (0, 1] kept per class")
    p.add_argument("--by", default="cv", help=f"method: {', '.join(METHODS)} (default: cv)")
    p.add_argument("--order", default="high", choices=ORDERS,
                   help="high: largest scores first (high cv; hard by mean; most uncertain by mc-dropout), "
                        "low: smallest first (easy by mean) (default: high)")
    p.add_argument("--sampling", default="top", choices=SAMPLINGS,
                   help="top: first n_c ranks; interval: evenly spaced ranks (default: top)")
    p.add_argument("--seed", type=int, default=0, help="seed for random and mc-dropout")
    p.add_argument("--checkpoint", default=None, help="model for mc-dropout / k-center")
    p.add_argument("--data", default=None, help="dataset (needed for mc-dropout / k-center; checked against "
                                                "--scores when both are given)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--mc-passes", type=int, default=10, help="stochastic passes for mc-dropout (default: 10)")
    p.add_argument("--mc-p", type=float, default=0.5,
                   help="dropout rate added before the classifier when the model has no dropout (default: 0.5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", default="subset.json")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.subsample import SubsampleConfig, run_subsample

    record = run_subsample(SubsampleConfig(
        ratio=args.ratio, out=args.out, by=args.by, order=args.order, sampling=args.sampling, seed=args.seed,
        scores=args.scores, checkpoint=args.checkpoint, data=args.data, data_root=args.data_root,
        mc_passes=args.mc_passes, mc_p=args.mc_p, batch_size=args.batch_size, device=args.device, quiet=args.quiet))
    summary = {k: v for k, v in record.items() if k != "indices"}
    print(json.dumps({"out": args.out, **summary}))
    return 0
