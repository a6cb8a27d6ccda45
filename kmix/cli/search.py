"""`kmix search`: PC-DARTS architecture search on a dataset or a subsample; writes DIR/genotype.json."""
from __future__ import annotations

import argparse
import json

from kmix.search.loop import SearchConfig

_D = SearchConfig()


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="PC-DARTS architecture search (on a subsample with --subset)",
        description="PC-DARTS (partial channels K=4, edge normalisation, first-order bilevel): network weights "
                    "train on one seeded half of the (sub)set, alphas/betas on the other, after the warm-up "
                    "epochs. Writes OUT/genotype.json (every epoch), search.json, history.csv, alphas.png and "
                    "checkpoint.pt (every epoch; continue with --resume). Defaults = the PC-DARTS CIFAR setup: "
                    "8 cells, C=16, 50 epochs, 15 warm-up, batch 256, SGD lr 0.1 cosine, Adam 6e-4.")
    p.add_argument("--data", default=_D.data, help="dataset spec: digits, cifar10, cifar100 or an ImageFolder path")
    p.add_argument("--data-root", default=None, help="dataset folder (CIFAR)")
    p.add_argument("--subset", default=None, help="subset index file (e.g. from `kmix subsample`)")
    p.add_argument("--limit", type=int, default=None, help="search on a seeded random LIMIT images of the (sub)set")
    p.add_argument("--epochs", type=int, default=_D.epochs, help=f"search epochs (default: {_D.epochs})")
    p.add_argument("--warmup", type=int, default=_D.warmup,
                   help=f"first epochs with alphas/betas frozen (default: {_D.warmup})")
    p.add_argument("--layers", type=int, default=_D.layers, help=f"cells in the supernet (default: {_D.layers})")
    p.add_argument("--channels", type=int, default=_D.channels, help=f"initial channels (default: {_D.channels})")
    p.add_argument("--partial-k", type=int, default=_D.partial_k,
                   help=f"1/K of the channels enter each mixed op (default: {_D.partial_k})")
    p.add_argument("--batch-size", type=int, default=_D.batch_size, help=f"(default: {_D.batch_size})")
    p.add_argument("--lr", type=float, default=_D.lr, help=f"SGD learning rate, cosine to 0 (default: {_D.lr})")
    p.add_argument("--arch-lr", type=float, default=_D.arch_lr, help=f"Adam lr of alphas/betas (default: {_D.arch_lr})")
    p.add_argument("--no-augment", action="store_true", help="no random crop/flip on the search data")
    p.add_argument("--seed", type=int, default=_D.seed, help="seed of the split, the shuffles and the init")
    p.add_argument("--device", default=_D.device, help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--workers", type=int, default=_D.workers, help="data loader workers")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (same settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.search.loop import run_search

    cfg = SearchConfig(
        data=args.data, data_root=args.data_root, subset=args.subset, limit=args.limit, out=args.out,
        epochs=args.epochs, warmup=args.warmup, layers=args.layers, channels=args.channels,
        partial_k=args.partial_k, batch_size=args.batch_size, lr=args.lr, arch_lr=args.arch_lr,
        augment=not args.no_augment, seed=args.seed, device=args.device, workers=args.workers,
        resume=args.resume, quiet=args.quiet,
    )
    summary = run_search(cfg)
    print(json.dumps({"out": args.out, "wall_s": round(summary["wall_s"], 2), "epochs": summary["epochs"],
                      "images_seen_per_epoch": summary["images_seen_per_epoch"], "genotype": summary["genotype"]}))
    return 0
