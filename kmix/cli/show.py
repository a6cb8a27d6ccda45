"""`kmix show`: write a PNG grid of originals and K-image mixes with their soft labels."""
from __future__ import annotations

import argparse

from kmix.viz.mix_grid import SHOWABLE, ShowConfig, show_mix


def parse_alpha(text: str) -> float | tuple[float, ...]:
    """'0.2' -> 0.2; '0.2,0.5,1' -> (0.2, 0.5, 1.0) (one value per image)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"alpha must be a number or comma-separated numbers, got {text!r}") from err
    return values[0] if len(values) == 1 else values


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="PNG grid of originals and K-image mixes with soft labels",
                       description="Mix a few training images with DMixup / DCutMix / Saliency-DCutMix and "
                                   "save a grid of the originals and the mixes, labelled with their top classes.")
    p.add_argument("--data", default="digits", help="digits (embedded, default), cifar10, cifar100 or an ImageFolder path")
    p.add_argument("--data-root", default=None, help="folder holding the CIFAR files")
    p.add_argument("--mix", default="all", choices=SHOWABLE, help="which mixer to show (default: all three)")
    p.add_argument("--k", type=int, default=3, help="images mixed per sample (default 3)")
    p.add_argument("--alpha", type=parse_alpha, default=1.0, help="Dirichlet alpha: one value or K comma-separated")
    p.add_argument("--num-images", type=int, default=8, help="images per row (default 8)")
    p.add_argument("--image-size", type=int, default=None, help="resize ImageFolder images (default 224)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="mix_grid.png", help="PNG to write (default mix_grid.png)")
    return p


def run(args: argparse.Namespace) -> int:
    path = show_mix(ShowConfig(data=args.data, data_root=args.data_root, mix=args.mix, k=args.k, alpha=args.alpha,
                               num_images=args.num_images, seed=args.seed, image_size=args.image_size, out=args.out))
    print(f"wrote {path}")
    return 0
