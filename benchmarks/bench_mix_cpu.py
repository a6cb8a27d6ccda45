"""DCutMix on the CPU, side by side: kmix against the official code's per-sample slicing loop, timm's
per-sample (elem) CutMix and a batch clone, one thread, median of 20 calls.

    nice python benchmarks/bench_mix_cpu.py                 # 64x3x224x224 and 256x3x32x32, K=3
    python benchmarks/bench_mix_cpu.py --calls 5 --dry-run  # tiny shapes: checks the script, not speed

The official loop is written from the DCutMix code's description (`per_sample_loop_dcutmix` in
bench_mix.py): clone the batch, then for each sample and each nested box copy the box slice from the
partner. Contenders run interleaved (one call each per round), so a loaded machine slows all alike.
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

from kmix import DCutMix  # noqa: E402
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per contender (median reported)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true", help=f"tiny shapes {DRY_SHAPES}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"bench_mix_cpu: torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.calls} "
          f"calls after 2 warm-up; kmix box copies from {fast.BOX_COPY_MIN_PIXELS} pixels")
    for shape in DRY_SHAPES if args.dry_run else SHAPES:
        x = torch.rand(shape)
        y = torch.randint(0, NUM_CLASSES, (shape[0],))
        calls = contenders(x, y, args.k)
        times = {name: [] for name in calls}
        for r in range(args.calls + 2):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn(x)
                if r >= 2:
                    times[name].append((time.perf_counter() - t0) * 1e3)
        clone = statistics.median(times["batch clone"])
        print(f"\n| {'x'.join(map(str, shape))} | ms per call | x clone |\n|---|---:|---:|")
        for name, ts in times.items():
            ms = statistics.median(ts)
            print(f"| {name} | {ms:.2f} | {ms / clone:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
