"""Time per call of kmix's mixers against the memcpy floor, a per-sample loop and other libraries.

    python benchmarks/bench_mix.py                    # CPU (and CUDA when present), both shapes
    python benchmarks/bench_mix.py --device cuda      # CUDA only (what benchmarks/gpu_check.sh runs)
    python benchmarks/bench_mix.py --rounds 40 --json bench_mix.json
    python benchmarks/bench_mix.py --dry-run          # tiny shapes, 2 rounds: checks the script, not speed
    python benchmarks/bench_mix.py --ops              # dispatched aten ops per call (the CPU proxy), before/after

The `, compiled` rows are the same mixers built with `compiled=True` (torch.compile of the pixel step; the
compilation happens in the untimed warm-up rounds).

Contenders run interleaved (one call each per round) after warm-up rounds, and the median over
rounds is reported, so a noisy machine slows all of them alike. On CUDA each call is timed with
CUDA events after a torch.cuda.synchronize(): the time from the call's start to the end of its last
kernel, host work (sampling, launches, syncs) included. Libraries that mix in place (timm) get a
fresh copy of the batch made outside the timed region. Missing optional libraries (pip install
'kmix[bench]') and contenders that fail on a device are skipped with a note.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Callable

import numpy as np
import torch

from kmix import DCutMix, DMixup, SaliencyDCutMix

SHAPES = [(256, 3, 32, 32), (64, 3, 224, 224)]
DRY_SHAPES = [(8, 3, 16, 16), (4, 3, 32, 32)]
NUM_CLASSES = 100
CLONE = "batch clone (memcpy floor)"
TARGET = ("kmix DCutMix K=5", 2.0)  # the target: DCutMix K=5 within 2x a batch clone
WARMUP_ROUNDS = 3


def per_sample_loop_dcutmix(x: torch.Tensor, y: torch.Tensor, k: int, alpha: float, rng: np.random.Generator):
    """The straightforward DCutMix: a Python loop over samples and nested boxes (the authors' style)."""
    n, _, h, w = x.shape
    out = x.clone()
    soft = torch.zeros(n, NUM_CLASSES, device=x.device)
    labels = y.tolist()
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
            soft[i, labels[partners[j - 1]]] += (prev_area - bh * bw) / (h * w)
            prev_area = bh * bw
        soft[i, labels[partners[-1]]] += prev_area / (h * w)
    return out, soft


def contenders(x: torch.Tensor, y: torch.Tensor, notes: list[str]) -> dict[str, tuple[Callable, bool]]:
    """name -> (call, mutates_input). Calls take the batch to use; skipped libraries go to `notes`."""
    dev = x.device
    gen = torch.Generator(device="cpu").manual_seed(0)
    rng = np.random.default_rng(0)
    out: dict[str, tuple[Callable, bool]] = {CLONE: (lambda b: b.clone(), False)}
    buffer = torch.empty_like(x)  # copy without allocating: shows how much of a clone is page faults
    out["copy_ into a preallocated buffer"] = (lambda b: buffer.copy_(b), False)
    for k in (2, 3, 5):
        for cls in (DMixup, DCutMix, SaliencyDCutMix):
            mix = cls(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=gen)
            out[f"kmix {cls.__name__} K={k}"] = (lambda b, m=mix: m(b, y), False)
    for cls in (DMixup, DCutMix):  # the compiled path: torch.compile of the pixel step (the warm-up compiles)
        mix = cls(num_classes=NUM_CLASSES, k=5, alpha=1.0, generator=gen, compiled=True)
        out[f"kmix {cls.__name__} K=5, compiled"] = (lambda b, m=mix: m(b, y), False)
    if dev.type == "cuda":  # parameters drawn on the GPU instead of the CPU
        mix = DCutMix(num_classes=NUM_CLASSES, k=5, alpha=1.0, generator=torch.Generator(device=dev).manual_seed(0))
        out["kmix DCutMix K=5, CUDA generator"] = (lambda b, m=mix: m(b, y), False)
    out["per-sample loop DCutMix K=5"] = (lambda b: per_sample_loop_dcutmix(b, y, 5, 1.0, rng), False)
    try:
        from timm.data import Mixup
    except ImportError:
        notes.append("timm not installed: its contenders skipped (pip install 'kmix[bench]')")
    else:
        for mode in ("elem", "batch"):
            tm = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, num_classes=NUM_CLASSES)
            tc = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, num_classes=NUM_CLASSES)
            out[f"timm Mixup ({mode})"] = (lambda b, m=tm: m(b, y), True)
            out[f"timm CutMix ({mode})"] = (lambda b, m=tc: m(b, y), True)
    from torchvision.transforms import v2

    tv_cut, tv_mix = v2.CutMix(num_classes=NUM_CLASSES), v2.MixUp(num_classes=NUM_CLASSES)
    out["torchvision v2 CutMix"] = (lambda b: tv_cut(b, y), False)
    out["torchvision v2 MixUp"] = (lambda b: tv_mix(b, y), False)
    try:
        from kornia.augmentation import RandomCutMixV2
    except ImportError:
        notes.append("kornia not installed: its contenders skipped (pip install 'kmix[bench]')")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in (2, 5):
                kc = RandomCutMixV2(num_mix=k - 1, data_keys=["input", "class"]).to(dev)
                out[f"kornia RandomCutMixV2 num_mix={k - 1}"] = (lambda b, m=kc: m(b, y), False)
    return out


# Dispatched aten ops per call at 256x3x32x32 (CPU generator) on commit 567d0d8, before the fast path (kmix.mix.fast).
OPS_BEFORE = {"DMixup": {2: 35, 3: 38, 5: 44, 9: 56}, "DCutMix": {2: 48, 3: 49, 5: 51, 9: 55},
              "SaliencyDCutMix": {2: 113, 3: 114, 5: 116, 9: 120},
              "Mixup (batch)": 35, "Mixup (elem)": 34, "CutMix (batch)": 82, "CutMix (elem)": 78,
              "scoring: one batch's composites and labels (apply_cutmix + mix_labels)": 43,
              "scoring: one chunk's parameters (AnchoredSampler.sample)": 54}
OPS_TARGET = {"DMixup": 20, "DCutMix": 20, "SaliencyDCutMix": 40}
# The batch on the meta device (the ops a CUDA batch dispatches), contiguous / channels_last, at every K, on commit
# 451eb6c (DCutMix's three host tables copied one by one).
OPS_META_BEFORE = {"DMixup": (14, 16), "DCutMix": (23, 25)}


def ops_table(shape=(256, 3, 32, 32)) -> list[str]:
    """Markdown rows: dispatched aten ops per call of each mixer (TorchDispatchMode), before and now."""
    from kmix import CutMix, Mixup
    from kmix.mix import apply_cutmix, mix_labels
    from kmix.mix.opcount import ops_per_call
    from kmix.select.score import ScoreSpec, chunk_params

    x = torch.rand(shape)
    y = torch.randint(0, NUM_CLASSES, (shape[0],))
    gen = torch.Generator().manual_seed(0)
    rows = [f"| {'x'.join(map(str, shape))}, CPU generator | before (567d0d8) | now | target |", "|---|---:|---:|---:|"]
    for cls in (DMixup, DCutMix, SaliencyDCutMix):
        for k in (2, 3, 5, 9):
            mix = cls(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=gen)
            now, _ = ops_per_call(lambda: mix(x, y))
            rows.append(f"| {cls.__name__} K={k} | {OPS_BEFORE[cls.__name__][k]} | {now} | <= {OPS_TARGET[cls.__name__]} |")
    for cls in (Mixup, CutMix):
        for mode in ("batch", "elem"):
            mix = cls(NUM_CLASSES, mode=mode, generator=gen)
            now, _ = ops_per_call(lambda: mix(x, y))
            rows.append(f"| {cls.__name__} ({mode}) | {OPS_BEFORE[f'{cls.__name__} ({mode})']} | {now} | - |")
    spec = ScoreSpec(draws=4, chunk_size=shape[0] // 4)  # the default K=3 composites, one batch per chunk
    onehot = torch.eye(10)[torch.randint(0, 10, (shape[0],))]
    params = chunk_params(spec, 0, shape[0], *shape[-2:])
    name = "scoring: one batch's composites and labels (apply_cutmix + mix_labels)"
    now, _ = ops_per_call(lambda: mix_labels(onehot, params.index, apply_cutmix(x, params.index, params.boxes)[1]))
    rows.append(f"| {name} | {OPS_BEFORE[name]} | {now} | - |")
    name = "scoring: one chunk's parameters (AnchoredSampler.sample)"
    now, _ = ops_per_call(lambda: chunk_params(spec, 0, shape[0], *shape[-2:]))
    rows.append(f"| {name} | {OPS_BEFORE[name]} | {now} | - |")
    rows += ["", f"| {'x'.join(map(str, shape))} on the meta device (a CUDA batch's ops), contiguous / channels_last "
                 "| before (451eb6c) | now | target |", "|---|---:|---:|---:|"]
    for cls in (DMixup, DCutMix):
        for k in (2, 3, 5, 9):
            mix = cls(num_classes=NUM_CLASSES, k=k, alpha=1.0, generator=gen)
            now = [ops_per_call(lambda: mix(xm, y))[0] for xm in (
                torch.empty(shape, device="meta"),
                torch.empty(shape, device="meta").contiguous(memory_format=torch.channels_last))]
            before = OPS_META_BEFORE[cls.__name__]
            rows.append(f"| {cls.__name__} K={k} | {before[0]} / {before[1]} | {now[0]} / {now[1]} "
                        f"| <= {OPS_TARGET[cls.__name__]} |")
    return rows


def make_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """A function timing one call in ms: CUDA events on a synchronised device, perf_counter on the CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def time_cuda(call) -> float:
            torch.cuda.synchronize(device)
            start.record()
            call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return time_cuda

    def time_cpu(call) -> float:
        t0 = time.perf_counter()
        call()
        return (time.perf_counter() - t0) * 1e3

    return time_cpu


def bench_shape(shape, device: torch.device, rounds: int, warmup: int, notes: list[str]) -> dict[str, float]:
    """Median ms per call of every contender on one batch shape, interleaved over `rounds` after `warmup`."""
    x = torch.rand(shape, device=device)
    y = torch.randint(0, NUM_CLASSES, (shape[0],), device=device)
    calls = contenders(x, y, notes)
    timer = make_timer(device)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(warmup + rounds):
        for name, (fn, mutates) in list(calls.items()):
            batch = x.clone() if mutates else x
            try:
                ms = timer(lambda: fn(batch))
            except Exception as err:  # a library that does not run on this device: say so, keep the rest
                notes.append(f"{name} failed on {device} at {'x'.join(map(str, shape))}: "
                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
                del calls[name], times[name]
                continue
            if r >= warmup:
                times[name].append(ms)
    return {name: statistics.median(ts) for name, ts in times.items()}


def target_line(per_shape: dict[str, dict[str, float]]) -> str:
    """'target ...: <shape> <ratio>x (met|missed); ...' for the issue's DCutMix-vs-clone target."""
    name, limit = TARGET
    parts = []
    for shape, res in per_shape.items():
        if name in res:
            ratio = res[name] / res[CLONE]
            parts.append(f"{shape} {ratio:.1f}x ({'met' if ratio <= limit else 'missed'})")
    return f"target: {name} <= {limit:g}x a batch clone: " + "; ".join(parts)


def per_call_target_line(per_shape: dict[str, dict[str, float]], name: str = "kmix DCutMix K=5") -> str:
    """'target: ...' DCutMix K=5 <= timm's batch-mode CutMix at the small shape, <= 3x a clone at 224."""
    parts = []
    shapes = list(per_shape)
    small, large = per_shape[shapes[0]], per_shape[shapes[-1]]
    if name in small and "timm CutMix (batch)" in small:
        ratio = small[name] / small["timm CutMix (batch)"]
        parts.append(f"{shapes[0]} {ratio:.2f}x timm batch CutMix ({'met' if ratio <= 1.0 else 'missed'})")
    if name in large:
        ratio = large[name] / large[CLONE]
        parts.append(f"{shapes[-1]} {ratio:.1f}x a clone ({'met' if ratio <= 3.0 else 'missed'})")
    return (f"target: {name} <= timm's batch-mode CutMix at the small shape, <= 3x a clone at the large: "
            + ("; ".join(parts) or "not measured (timm missing)"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds for the small shape (the 224 shape gets a third); default 25, dry run 2")
    parser.add_argument("--device", action="append", help="cpu and/or cuda, repeatable (default: cpu, plus cuda "
                                                          "if present; dry run: cpu)")
    parser.add_argument("--dry-run", action="store_true",
                        help=f"tiny shapes {DRY_SHAPES}, 2 rounds, 1 warm-up: checks the script, measures nothing")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--ops", action="store_true", help="print dispatched aten ops per call (CPU) and exit")
    args = parser.parse_args(argv)
    if args.ops:
        print("dispatched aten ops per call (torch.utils._python_dispatch.TorchDispatchMode; views included)\n")
        print("\n".join(ops_table()))
        return 0
    shapes = DRY_SHAPES if args.dry_run else SHAPES
    rounds = args.rounds or (2 if args.dry_run else 25)
    warmup = 1 if args.dry_run else WARMUP_ROUNDS
    devices = args.device or (["cpu"] if args.dry_run else ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    for d in devices:
        if torch.device(d).type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {d}: CUDA is not available")
    print(f"bench_mix: torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32 batches, "
          f"median of {rounds} rounds after {warmup} warm-up" + (" (DRY RUN: tiny shapes)" if args.dry_run else ""))
    results = {}
    for name in devices:
        device = torch.device(name)
        notes: list[str] = []
        if device.type == "cuda":
            print(f"device {device}: {torch.cuda.get_device_name(device)}; times from CUDA events")
        per_shape = {}
        for shape in shapes:
            n_rounds = rounds if shape[-1] <= 64 else max(5, rounds // 3)
            per_shape["x".join(map(str, shape))] = bench_shape(shape, device, n_rounds, warmup, notes)
        results[name] = per_shape
        names = [n for n in next(iter(per_shape.values())) if all(n in r for r in per_shape.values())]
        header = "| contender | " + " | ".join(f"{s} ms | x clone" for s in per_shape) + " |"
        print(f"\n### {name}\n\n{header}\n|---|" + "---:|---:|" * len(per_shape))
        for row in names:
            cells = [f"{res[row]:.3f} | {res[row] / res[CLONE]:.1f}x" for res in per_shape.values()]
            print(f"| {row} | " + " | ".join(cells) + " |")
        print()
        print(target_line(per_shape))
        print(per_call_target_line(per_shape))
        print(per_call_target_line(per_shape, "kmix DCutMix K=5, compiled"))
        for note in dict.fromkeys(notes):  # unique, in order
            print(f"note: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
