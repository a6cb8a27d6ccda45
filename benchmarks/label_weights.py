"""How much label mass each mixer moves off the anchor image: the 'mixed-in weight' 1 - w_anchor (for two
images, the partner's label weight), over 20,000 draws at 32x32 (CPU, about half a minute).

    python benchmarks/label_weights.py [--draws 20000] [--size 32 32]

Prints a markdown table (mean, sd, P(>= 0.5), and the KS distance to the field's CutMix): the figures
docs/mixing.md quotes. Labels are read from each mixer's output (exact pixel fractions for the box
mixers). Samples paired with themselves (the field's mixers pair by a plain permutation, so at batch n
a sample meets itself with probability 1/n) are left out: the figures are the law of the weight given
a real partner, which does not depend on the batch size.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from kmix.mix import CutMix, DCutMix, DMixup, Mixup

MIXERS = [  # label, factory(num_classes, generator)
    ("CutMix alpha=1, batch (field)", lambda n, g: CutMix(n, alpha=1.0, mode="batch", generator=g)),
    ("CutMix alpha=1, elem (field)", lambda n, g: CutMix(n, alpha=1.0, mode="elem", generator=g)),
    ("DCutMix K=2 alpha=1 (box inside)", lambda n, g: DCutMix(num_classes=n, k=2, alpha=1.0, generator=g)),
    ("DCutMix K=3 alpha=1/3", lambda n, g: DCutMix(num_classes=n, k=3, alpha=1 / 3, generator=g)),
    ("DCutMix K=5 alpha=0.2", lambda n, g: DCutMix(num_classes=n, k=5, alpha=0.2, generator=g)),
    ("Mixup alpha=1, batch (field)", lambda n, g: Mixup(n, alpha=1.0, mode="batch", generator=g)),
    ("DMixup K=2 alpha=1 (per sample)", lambda n, g: DMixup(num_classes=n, k=2, alpha=1.0, generator=g)),
    ("DMixup K=5 alpha=0.2", lambda n, g: DMixup(num_classes=n, k=5, alpha=0.2, generator=g)),
]


def mixed_in_weights(mixer, size: tuple[int, int], draws: int) -> np.ndarray:
    """1 - the anchor's label weight, one value per batch for per-batch mixers, per sample otherwise."""
    per_batch = getattr(mixer, "mode", "elem") == "batch"
    n = 4 if per_batch else 500
    x, eye = torch.zeros(n, 1, *size), torch.eye(n)
    out: list[float] = []
    while len(out) < draws:
        params = mixer.sample_params(x)
        _, soft = mixer.apply(x, eye, params)
        real = (params.index[:, 1:] != params.index[:, :1]).all(dim=1)  # no slot holds the anchor itself
        w = (1.0 - soft.double().diagonal())[real]
        out += w[:1].tolist() if per_batch else w.tolist()
    return np.asarray(out[:draws])


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    cdf = lambda v: np.searchsorted(np.sort(v), grid, side="right") / len(v)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--size", type=int, nargs=2, default=[32, 32], metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = tuple(args.size)
    rows = [(label, mixed_in_weights(make(4, torch.Generator().manual_seed(args.seed)), size, args.draws))
            for label, make in MIXERS]
    reference = rows[0][1]
    print(f"| mixer ({size[0]}x{size[1]}, {args.draws:,} draws) | mean | sd | P(>= 0.5) | KS distance to CutMix |")
    print("|---|---:|---:|---:|---:|")
    for label, w in rows:
        print(f"| {label} | {w.mean():.3f} | {w.std():.3f} | {(w >= 0.5).mean():.3f} | {ks_distance(w, reference):.3f} |")


if __name__ == "__main__":
    main()
