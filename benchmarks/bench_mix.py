"""Time per call of kmix's mixers against the memcpy floor, a per-sample loop and other libraries.

    python benchmarks/bench_mix.py            # CPU (and CUDA when present), both shapes
    python benchmarks/bench_mix.py --rounds 40 --json bench_mix.json

Contenders run interleaved (one call each per round) and the median over rounds is reported, so a
noisy machine slows all of them alike. Libraries that mix in place (timm) get a fresh copy of the
batch made outside the timed region. Missing optional libraries (pip install 'kmix[bench]') are
skipped with a note.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import numpy as np
import torch

from kmix import DCutMix, DMixup, SaliencyDCutMix

SHAPES = [(256, 3, 32, 32), (64, 3, 224, 224)]
NUM_CLASSES = 100


def per_sample_loop_dcutmix(x: torch.Tensor, y: torch.Tensor, k: int, alpha: float, rng: np.random.Generator):
    """The straightforward DCutMix: a Python loop over samples and nested boxes (the authors' style)."""
    n, _, h, w = x.shape
    out = x.clone()
    soft = torch.zeros(n, NUM_CLASSES, device=x.device)
    for i in range(n):
        phi = rng.dirichlet([alpha] * k)
        partners = [i] + [int(j) for j in rng.choice([j for j in range(n) if j != i], size=k - 1)]
        top, left, bh, bw = 0, 0, h, w
        prev_area = h * w
        remaining = 1.0
        for j in range(1, k):
            v = min(phi[j - 1] / max(remaining, 1e-12), 1.0)
            remaining *= 1 - v
            nh, nw = min(round(bh * (1 - v) ** 0.5), bh), min(round(bw * (1 - v) ** 0.5), bw)
            top, left = top + int(rng.integers(0, bh - nh + 1)), left + int(rng.integers(0, bw - nw + 1))
            bh, bw = nh, nw
            out[i, :, top:top + bh, left:left + bw] = x[partners[j], :, top:top + bh, left:left + bw]
            soft[i, y[partners[j - 1]]] += (prev_area - bh * bw) / (h * w)
            prev_area = bh * bw
        soft[i, y[partners[-1]]] += prev_area / (h * w)
    return out, soft


def contenders(x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[Callable, bool]]:
    """name -> (call, mutates_input). Calls take the batch to use."""
    dev = x.device
    gen = torch.Generator(device="cpu").manual_seed(0)
    rng = np.random.default_rng(0)
    out: dict[str, tuple[Callable, bool]] = {"batch clone (memcpy floor)": (lambda b: b.clone(), False)}
    buffer = torch.empty_like(x)  # copy without allocating: shows how much of a clone is page faults
    out["copy_ into a preallocated buffer"] = (lambda b: buffer.copy_(b), False)
    for k in (2, 3, 5):
        for cls in (DMixup, DCutMix, SaliencyDCutMix):
            mix = cls(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=gen)
            out[f"kmix {cls.__name__} K={k}"] = (lambda b, m=mix: m(b, y), False)
    out["per-sample loop DCutMix K=5"] = (lambda b: per_sample_loop_dcutmix(b, y, 5, 1.0, rng), False)
    try:
        from timm.data import Mixup

        for mode in ("elem", "batch"):
            tm = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, num_classes=NUM_CLASSES)
            tc = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=NUM_CLASSES)
            out[f"timm Mixup ({mode})"] = (lambda b, m=tm: m(b, y), True)
            out[f"timm CutMix ({mode})"] = (lambda b, m=tc: m(b, y), True)
    except ImportError:
        print("timm not installed: skipped (pip install 'kmix[bench]')")
    from torchvision.transforms import v2

    tv_cut, tv_mix = v2.CutMix(num_classes=NUM_CLASSES), v2.MixUp(num_classes=NUM_CLASSES)
    out["torchvision v2 CutMix"] = (lambda b: tv_cut(b, y), False)
    out["torchvision v2 MixUp"] = (lambda b: tv_mix(b, y), False)
    try:
        import warnings

        from kornia.augmentation import RandomCutMixV2

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in (2, 5):
                kc = RandomCutMixV2(num_mix=k - 1, data_keys=["input", "class"]).to(dev)
                out[f"kornia RandomCutMixV2 num_mix={k - 1}"] = (lambda b, m=kc: m(b, y), False)
    except ImportError:
        print("kornia not installed: skipped (pip install 'kmix[bench]')")
    return out


def bench_shape(shape, device: str, rounds: int) -> dict[str, float]:
    """Median ms per call of every contender on one batch shape, interleaved over `rounds`."""
    x = torch.rand(shape, device=device)
    y = torch.randint(0, NUM_CLASSES, (shape[0],), device=device)
    calls = contenders(x, y)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds + 2):  # two warm-up rounds
        for name, (fn, mutates) in calls.items():
            batch = x.clone() if mutates else x
            sync()
            t0 = time.perf_counter()
            fn(batch)
            sync()
            if r >= 2:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds per shape (median reported)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32 batches")
    results = {}
    for device in devices:
        per_shape = {}
        for shape in SHAPES:
            rounds = args.rounds if shape[-1] <= 64 else max(5, args.rounds // 3)
            per_shape["x".join(map(str, shape))] = bench_shape(shape, device, rounds)
        results[device] = per_shape
        names = list(next(iter(per_shape.values())))
        header = "| contender | " + " | ".join(f"{s} ms | x clone" for s in per_shape) + " |"
        print(f"\n### {device}\n\n{header}\n|---|" + "---:|---:|" * len(per_shape))
        for name in names:
            cells = []
            for s, res in per_shape.items():
                clone = res["batch clone (memcpy floor)"]
                cells.append(f"{res[name]:.2f} | {res[name] / clone:.1f}x")
            print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
