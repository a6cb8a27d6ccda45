"""Training-step overhead of each mixer: the same model and batch, vanilla vs Mixup/CutMix/DMixup/DCutMix.

Times one full training step (mix on the device + forward + backward + SGD step) per contender,
interleaved round by round in a rotating order so that machine noise hits every contender alike,
and reports medians, the ratio to vanilla, and the mixing call alone (ms) with its share of a
vanilla step (a noise-free estimate of the overhead).

    python benchmarks/bench_train_overhead.py                      # preact_resnet18, 32x32, batch 64, CPU
    python benchmarks/bench_train_overhead.py --model small_cnn --rounds 20
    python benchmarks/bench_train_overhead.py --device cuda --rounds 30 --steps 10
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from kmix.mix import SoftTargetCrossEntropy, soft_targets
from kmix.models import Normalized, build_model
from kmix.train.build import build_mixer
from kmix.train.config import TrainConfig

CONTENDERS = [("vanilla", "none", 2), ("mixup", "mixup", 2), ("cutmix", "cutmix", 2), ("dmixup K=3", "dmixup", 3),
              ("dmixup K=5", "dmixup", 5), ("dcutmix K=3", "dcutmix", 3), ("dcutmix K=5", "dcutmix", 5)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, mixer, criterion, optimizer, num_classes, device):
    """One training step on (x, y) with `mixer` (None = vanilla); returns seconds for (step, mixing)."""

    def step(x, y):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            xm, target = (x, soft_targets(y, num_classes, 0.0)) if mixer is None else mixer(x, y)
        _sync(device)
        t1 = time.perf_counter()
        loss = criterion(model(xm), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - t0, t1 - t0

    return step


def run(model_name: str, size: int, batch: int, num_classes: int, rounds: int, steps: int, warmup: int,
        device: torch.device, alpha: float, seed: int, threads: int | None) -> list[dict]:
    """Median step/mix time per contender over `rounds` interleaved rounds of `steps` steps."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = Normalized(build_model(model_name, num_classes=num_classes, in_chans=3), [0.5] * 3, [0.25] * 3).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # tiny lr: weights stay sane
    criterion = SoftTargetCrossEntropy()
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    gen = torch.Generator().manual_seed(seed)
    steppers = {name: make_step(model, build_mixer(TrainConfig(mix=mix, k=k, alpha=alpha), num_classes, gen),
                                criterion, optimizer, num_classes, device)
                for name, mix, k in CONTENDERS}
    for name in steppers:  # warm up every path (allocator, kernels)
        for _ in range(warmup):
            steppers[name](x, y)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steppers}
    names = list(steppers)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in order:
            for _ in range(steps):
                times[name].append(steppers[name](x, y))
    base = statistics.median(t for t, _ in times["vanilla"])
    rows = []
    for name in names:
        step_med = statistics.median(t for t, _ in times[name])
        mix_med = statistics.median(m for _, m in times[name])
        rows.append({"contender": name, "step_ms": 1e3 * step_med, "ratio": step_med / base, "mix_ms": 1e3 * mix_med,
                     "mix_ratio": 1 + (mix_med - statistics.median(m for _, m in times["vanilla"])) / base,
                     "n": len(times[name])})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="preact_resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=2, help="steps per contender per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = run(args.model, args.size, args.batch_size, args.num_classes, args.rounds, args.steps, args.warmup,
               device, args.alpha, args.seed, args.threads)
    print(f"# {args.model}, {args.batch_size}x3x{args.size}x{args.size}, {args.num_classes} classes, {device}, "
          f"threads={torch.get_num_threads()}, medians of {rows[0]['n']} steps (interleaved)")
    print("# 'x vanilla' = median step / median vanilla step (includes machine noise); "
          "'1+mix/step' = 1 + (median mixing time - vanilla's) / median vanilla step (the mixing cost alone)")
    print(f"{'contender':<14}{'step ms':>10}{'x vanilla':>11}{'mix ms':>9}{'1+mix/step':>12}")
    for r in rows:
        print(f"{r['contender']:<14}{r['step_ms']:>10.2f}{r['ratio']:>11.3f}{r['mix_ms']:>9.2f}{r['mix_ratio']:>12.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
