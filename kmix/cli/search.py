"""`kmix search`: PC-DARTS architecture search on a dataset or a subsample; writes DIR/genotype.json."""
from __future__ import annotations

import argparse
import json

from kmix.cli.config_args import add_config_args, given_values
from kmix.search.loop import SearchConfig

# SearchConfig's fields with a command-line option, in --help order (the others keep the PC-DARTS values)
OPTIONS = ("data", "data_root", "subset", "limit", "epochs", "warmup", "layers", "channels", "partial_k", "batch_size",
           "lr", "arch_lr", "augment", "seed", "device", "workers", "out", "resume", "quiet")


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="PC-DARTS architecture search (on a subsample with --subset)",
        description="PC-DARTS (partial channels K=4, edge normalisation, first-order bilevel): network weights "
                    "train on one seeded half of the (sub)set, alphas/betas on the other, after the warm-up "
                    "epochs. Writes OUT/genotype.json (every epoch), search.json, history.csv, alphas.png and "
                    "checkpoint.pt (every epoch; continue with --resume). Defaults = the PC-DARTS CIFAR setup: "
                    "8 cells, C=16, 50 epochs, 15 warm-up, batch 256, SGD lr 0.1 cosine, Adam 6e-4.")
    add_config_args(p, SearchConfig, only=OPTIONS, required=("out",))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.search.loop import run_search

    cfg = SearchConfig(**given_values(args, SearchConfig))
    summary = run_search(cfg)
    print(json.dumps({"out": cfg.out, "wall_s": round(summary["wall_s"], 2), "epochs": summary["epochs"],
                      "images_seen_per_epoch": summary["images_seen_per_epoch"], "genotype": summary["genotype"]}))
    return 0
