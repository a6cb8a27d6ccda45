"""Cost of `kmix train --record-dynamics` per training step, against the plain step.

Contenders, interleaved round by round (medians reported), on one model and batch:
- plain: `train_step` on the mixed batch (what a run without records does);
- record, mix: an eval-mode no-grad forward pass on the unmixed batch + `DynamicsRecorder.record`,
  then the same `train_step` (what a mixing run with records does);
- record, no mix: `train_step(keep_logits=True)` + `record` on the training logits (mix none).

    python benchmarks/bench_record_dynamics.py          # small_cnn on 1x16x16 (digits), resnet20 on 3x32x32
    python benchmarks/bench_record_dynamics.py --rounds 30 --steps 20 --device cuda --amp bf16 --channels-last
    python benchmarks/bench_record_dynamics.py --dry-run             # 2 rounds, tiny: checks the plumbing
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from kmix.devices import resolve_device
from kmix.mix import DCutMix, SoftTargetCrossEntropy
from kmix.models import build_model
from kmix.train.build import autocast
from kmix.train.dynamics import DynamicsRecorder
from kmix.train.loop import train_step

CASES = {"small_cnn": (1, 16, 10, 64), "resnet20": (3, 32, 10, 128)}  # in_chans, size, classes, batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(model_name: str, rounds: int, steps: int, device: torch.device, amp: str, channels_last: bool,
          batch: int | None = None) -> dict:
    chans, size, classes, default_batch = CASES[model_name]
    batch = batch or default_batch
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=classes, in_chans=chans).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    mixer = DCutMix(num_classes=classes, k=3, alpha=1.0, generator=torch.Generator().manual_seed(0))
    crit = SoftTargetCrossEntropy()
    x = torch.rand(batch, chans, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device=device)
    index = torch.randperm(50_000)[:batch].to(device)
    rec = DynamicsRecorder(1, 50_000, device)
    rec.begin_epoch(0)
    common = dict(criterion=crit, optimizer=opt, scaler=scaler, scheduler=sched, amp=amp)

    def plain():
        xm, t = mixer(x, y)
        train_step(model, xm, t, **common)

    def record_mix():
        model.eval()
        with torch.no_grad(), autocast(amp, device):
            logits = model(x)
        model.train()
        rec.record(index, logits, y)
        xm, t = mixer(x, y)
        train_step(model, xm, t, **common)

    def record_none():
        _, logits = train_step(model, x, torch.nn.functional.one_hot(y, classes).float(), keep_logits=True, **common)
        rec.record(index, logits, y)

    def plain_none():
        train_step(model, x, torch.nn.functional.one_hot(y, classes).float(), **common)

    contenders = {"plain (dcutmix)": plain, "record (dcutmix: + eval pass)": record_mix,
                  "plain (mix none)": plain_none, "record (mix none: training logits)": record_none}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": model_name, "batch": batch, "device": str(device), "amp": amp, "rounds": rounds,
            "ms_per_step": {k: round(v, 3) for k, v in med.items()},
            "overhead_dcutmix": round(med["record (dcutmix: + eval pass)"] / med["plain (dcutmix)"] - 1, 4),
            "overhead_none": round(med["record (mix none: training logits)"] / med["plain (mix none)"] - 1, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="small_cnn,resnet20")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="steps per timed round")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="2 rounds of 1 step at batch 8")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rounds, steps, batch = (2, 1, 8) if args.dry_run else (args.rounds, args.steps, args.batch)
    for name in args.models.split(","):
        print(json.dumps(bench(name, rounds, steps, device, args.amp, args.channels_last, batch)))


if __name__ == "__main__":
    main()
