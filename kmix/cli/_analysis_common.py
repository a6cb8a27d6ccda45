"""Arguments shared by the analysis subcommands (landscape, attack, ood, eval)."""
from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser, plain_classes: bool = False) -> None:
    """--arch (plain state_dict files) and, for class-aware commands, --num-classes/--model-classes."""
    p.add_argument("--arch", default=None,
                   help="treat the checkpoint as a plain state_dict of this model (a kmix registry name, "
                        "tv:NAME or timm:NAME), normalised with ImageNet mean/std; default: a kmix checkpoint")
    if plain_classes:
        p.add_argument("--num-classes", type=int, default=None,
                       help="classes of a plain state_dict model (default: len(--model-classes), else the "
                            "rows of its last 2-D weight, i.e. the classifier)")
        p.add_argument("--model-classes", default=None,
                       help="file listing a plain state_dict model's class names/wnids in output order")


def add_data_args(p: argparse.ArgumentParser, limit: int | None, batch_size: int = 128, flag: str = "--data") -> None:
    """Dataset spec/root, evaluation subset size, batch size, image size, seed, device, quiet."""
    if flag:
        p.add_argument(flag, default="digits",
                       help="dataset spec: digits, cifar10, cifar100 or an ImageFolder path (default: digits)")
    p.add_argument("--data-root", default=None, help="dataset folder (CIFAR)")
    p.add_argument("--limit", type=_limit, default=limit,
                   help=f"evaluate on a fixed random subset of this many images, 0 = all (default: {limit or 'all'})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"images per forward pass (default: {batch_size})")
    p.add_argument("--image-size", type=int, default=None, help="image size for ImageFolder data")
    p.add_argument("--seed", type=int, default=0, help="seed for the subset and random draws (default: 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or printed tables")


def _limit(text: str) -> int | None:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value or None
