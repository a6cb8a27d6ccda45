"""`kmix show`: write a PNG grid of originals and K-image mixes with their soft labels."""
from __future__ import annotations

import argparse

from kmix.cli.config_args import add_config_args, given_values
from kmix.options import parse_number_or_numbers
from kmix.viz.mix_grid import ShowConfig, show_mix


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="PNG grid of originals and K-image mixes with soft labels",
                       description="Mix a few training images with DMixup / DCutMix / Saliency-DCutMix and "
                                   "save a grid of the originals and the mixes, labelled with their top classes.")
    add_config_args(p, ShowConfig, types={"alpha": parse_number_or_numbers})
    return p


def run(args: argparse.Namespace) -> int:
    path = show_mix(ShowConfig(**given_values(args, ShowConfig)))
    print(f"wrote {path}")
    return 0
