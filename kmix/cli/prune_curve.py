"""`kmix prune-curve`: test error vs kept fraction T per subsampling method (the paper's Fig. 5a)."""
from __future__ import annotations

import argparse
import json


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="train on subsets chosen by each method at each ratio; plot error vs T",
                       description="Scores the training set (with --checkpoint, or the full-data run of the first "
                                   "seed), then for every method, ratio and seed chooses a per-class subset and "
                                   "trains a fresh model on it. Writes runs.csv, curve.csv and curve.png under "
                                   "--out; rerunning skips finished runs.")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint", default=None, help="scoring model (default: train one on all data)")
    p.add_argument("--ratios", default="0.1,0.3,0.5", help="kept fractions T (default: 0.1,0.3,0.5)")
    p.add_argument("--methods", default="cv,random",
                   help="comma-separated BY[:ORDER[:SAMPLING]], e.g. cv,random,mean:low,mean:high,std,k-center,"
                        "mc-dropout (default: cv,random)")
    p.add_argument("--seeds", default="0,1", help="training seeds (default: 0,1)")
    p.add_argument("--no-full", action="store_true", help="skip the full-data runs (needs --checkpoint)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of every run (default: 15)")
    p.add_argument("--equal-steps", action="store_true",
                   help="give subset runs epochs * N / n_train epochs: as many optimiser steps as a full-data run")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--mix", default="dcutmix", help="training mixer (default: dcutmix)")
    p.add_argument("--k", type=int, default=3, help="training K (default: 3)")
    p.add_argument("--alpha", type=float, default=1.0, help="training Dirichlet alpha (default: 1.0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--draws", type=int, default=10, help="scoring composites per image (default: 10)")
    p.add_argument("--score-seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", default="prune_curve")
    p.add_argument("--quiet", action="store_true")
    return p


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from kmix.cli.score import parse_floats
    from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
    from kmix.select.score import ScoreSpec

    config = PruneCurveConfig(
        data=args.data, data_root=args.data_root, checkpoint=args.checkpoint,
        ratios=parse_floats(args.ratios, "--ratios"),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        seeds=_ints(args.seeds, "--seeds"), full=not args.no_full, epochs=args.epochs, equal_steps=args.equal_steps,
        model=args.model,
        mix=args.mix, k=args.k, alpha=args.alpha, batch_size=args.batch_size, lr=args.lr,
        score=ScoreSpec(draws=args.draws, seed=args.score_seed), out=args.out, device=args.device, quiet=args.quiet)
    result = run_prune_curve(config)
    for row in result["curve"]:
        print(f"{row['method']:>14s}  T={row['ratio']:<5g} n={row['n_train']:<5d} "
              f"err {row['err_mean']:6.2f} +- {row['err_std']:.2f} % ({row['n_seeds']} seed(s))")
    print(json.dumps({"out": result["out"], "runs": result["runs"], "wall_s": result["wall_s"]}))
    return 0
