"""`kmix show`: write a PNG grid of originals and K-image mixes with their soft labels."""
from __future__ import annotations

import argparse

from kmix.cli.config_args import add_config_args, given_values
from kmix.viz.mix_grid import ShowConfig, show_mix


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
    add_config_args(p, ShowConfig, types={"alpha": parse_alpha})
    return p


def run(args: argparse.Namespace) -> int:
    path = show_mix(ShowConfig(**given_values(args, ShowConfig)))
    print(f"wrote {path}")
    return 0
