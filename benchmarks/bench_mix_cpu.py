"""DCutMix on the CPU, side by side: kmix against the official code's per-sample slicing loop, timm's
per-sample (elem) CutMix and a batch clone, one thread, median of 20 calls.

    nice python benchmarks/bench_mix_cpu.py                 # 64x3x224x224 and 256x3x32x32, K=3
    python benchmarks/bench_mix_cpu.py --calls 5 --dry-run  # tiny shapes: checks the script, not speed
    nice python benchmarks/bench_mix_cpu.py --compiled-only # only the eager vs compiled table

The official loop is written from the DCutMix code's description (`per_sample_loop_dcutmix` in
bench_mix.py): clone the batch, then for each sample and each nested box copy the box slice from the
partner. Contenders run interleaved (one call each per round), so a loaded machine slows all alike.
A second table puts DCutMix and DMixup K=5 eager against `compiled=True` (torch.compile of the pixel
step; the compilation happens in the untimed warm-up calls).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mix import NUM_CLASSES, per_sample_loop_dcutmix  # noqa: E402

from kmix import DCutMix, DMixup  # noqa: E402
from kmix.mix import fast  # noqa: E402

SHAPES = [(64, 3, 224, 224), (256, 3, 32, 32)]
DRY_SHAPES = [(4, 3, 100, 100), (8, 3, 16, 16)]


def contenders(x: torch.Tensor, y: torch.Tensor, k: int) -> dict:
    """name -> call(batch); timm is skipped when not installed."""
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    mix = DCutMix(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=gen)
    out = {"batch clone": lambda b: b.clone(),
           f"kmix DCutMix K={k}": lambda b: mix(b, y),
           f"official per-sample slicing loop K={k}": lambda b: per_sample_loop_dcutmix(b, y, k, 1.0, rng)}
    try:
        from timm.data import Mixup
    except ImportError:
        print("note: timm not installed, its row skipped")
    else:
        tc = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode="elem", num_classes=NUM_CLASSES)
        out["timm CutMix (elem, per sample, in place on a copy)"] = lambda b: tc(b.clone(), y)
    return out


def compiled_contenders(y: torch.Tensor, k: int = 5) -> dict:
    """name -> call(batch): DCutMix and DMixup K eager and compiled (same seed, so the same draws), and a clone."""
    out = {"batch clone": lambda b: b.clone()}
    for cls in (DCutMix, DMixup):
        for compiled in (False, True):
            mix = cls(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=torch.Generator().manual_seed(0),
                      compiled=compiled)
            out[f"kmix {cls.__name__} K={k}{', compiled' if compiled else ''}"] = lambda b, m=mix: m(b, y)
    return out


def timed(calls: dict, x: torch.Tensor, rounds: int, warmup: int = 2) -> dict:
    """name -> median ms per call over `rounds` interleaved rounds after `warmup` untimed ones."""
    times = {name: [] for name in calls}
    for r in range(rounds + warmup):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn(x)
            if r >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per contender (median reported)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help=f"tiny shapes {DRY_SHAPES}")
    parser.add_argument("--compiled-only", action="store_true", help="only the eager vs compiled (K=5) table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"bench_mix_cpu: torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.calls} "
          f"calls after 2 warm-up; kmix box copies from {fast.BOX_COPY_MIN_PIXELS} pixels")
    shapes = DRY_SHAPES if args.dry_run else SHAPES
    for shape in [] if args.compiled_only else shapes:
        x = torch.rand(shape)
        y = torch.randint(0, NUM_CLASSES, (shape[0],))
        ms = timed(contenders(x, y, args.k), x, args.calls)
        clone = ms["batch clone"]
        print(f"\n| {'x'.join(map(str, shape))} | ms per call | x clone |\n|---|---:|---:|")
        for name, t in ms.items():
            print(f"| {name} | {t:.2f} | {t / clone:.2f}x |")
    print(f"\neager vs compiled=True (torch.compile of the pixel step, static shapes), K=5, median of {args.calls}:")
    print("\n| shape | mixer | eager ms | compiled ms | compiled / eager | clone ms |\n|---|---|---:|---:|---:|---:|")
    for shape in shapes:
        x = torch.rand(shape)
        ms = timed(compiled_contenders(torch.randint(0, NUM_CLASSES, (shape[0],))), x, args.calls)
        for cls in ("DCutMix", "DMixup"):
            eager, comp = ms[f"kmix {cls} K=5"], ms[f"kmix {cls} K=5, compiled"]
            print(f"| {'x'.join(map(str, shape))} | {cls} K=5 | {eager:.2f} | {comp:.2f} | {comp / eager:.2f}x "
                  f"| {ms['batch clone']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
