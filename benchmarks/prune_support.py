"""Helpers of benchmarks/prune_cifar10_gpu.sh: measure the training speed and the per-run start-up cost in
one process (as `kmix prune-curve` runs its trainings), size the epochs so that the whole curve fits the
time budget, and record what ran where.

    python benchmarks/prune_support.py measure --out DIR --data-root D --model resnet20 --mix none \
        --batch-size 128 --amp bf16 --channels-last --device cuda --batches 100
    python benchmarks/prune_support.py size --measure DIR/measure.json --methods random,cv,... --ratios 0.1,0.3,0.5 \
        --seeds 0,1 --budgets epochs --draws 10 --evals-per-run 2 --budget-s 300 --elapsed-s 40
    python benchmarks/prune_support.py record --out OUT/prune.json --measure DIR/measure.json --epochs 12 --wall-s 290
    python benchmarks/prune_support.py table DIR    # DIR/curve.md, curve.csv, curve.png again from DIR/runs.csv
                                                    # and DIR/config.json (a curve's committed records)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

TEST_IMAGES = 10_000  # every CIFAR-10 run evaluates on the standard test split
FORWARD_COST = 2 / 3  # a no-grad forward pass, in training-step units (1/3 in theory; scoring runs in fp32)
MAX_EPOCHS = 200


def measure(out: Path, data_root: str, model: str, mix: str, batch_size: int, amp: str, channels_last: bool,
            device: str, batches: int, threads: int | None) -> dict:
    """Two identical short trainings in this process: the first warms the decoded-image cache, the device and
    cudnn; the second gives img/s (training only) and the start-up cost of a run (its wall time minus the
    training), as prune-curve's in-process runs will see them. Writes OUT/measure.json."""
    from kmix.train import TrainConfig, fit

    results = []
    for i in range(2):
        cfg = TrainConfig(data="cifar10", data_root=data_root, model=model, mix=mix, k=3, alpha=1.0, epochs=1,
                          batch_size=batch_size, amp=amp, channels_last=channels_last, device=device,
                          limit_train_batches=batches, schedule="constant", threads=threads,
                          out=str(out / f"run{i}"), quiet=True, tensorboard=False, plot=False)
        t0 = time.perf_counter()
        summary = fit(cfg)
        results.append((time.perf_counter() - t0, summary))
    wall, summary = results[1]
    train_s = batches * batch_size / summary["img_per_s"]
    record = {"img_per_s": summary["img_per_s"], "run_overhead_s": max(1.0, wall - train_s),
              "train_images": summary["train_images"], "device": summary["device"], "measure_wall_s": wall}
    (out / "measure.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def work_units(n_train: int, methods: int, ratios: list[float], seeds: int, budgets: list[str]) -> float:
    """Training images per epoch of the schedule, over the whole curve: the full-data runs plus every subset
    run (equal epochs: the subset's size; equal steps: about a full epoch)."""
    units = seeds * n_train  # full-data runs
    for budget in budgets:
        per_seed = sum(r * n_train for r in ratios) if budget == "epochs" else len(ratios) * n_train
        units += seeds * methods * per_seed
    return units


def size_epochs(img_per_s: float, run_overhead_s: float, n_train: int, methods: list[str], ratios: list[float],
                seeds: int, budgets: list[str], draws: int, evals_per_run: int, budget_s: float,
                elapsed_s: float) -> int:
    """The most epochs per run that fit what is left of the budget: runs x start-up, scoring (kmix-cv's draws
    x N forward passes, one pass per other checkpoint score), evaluations, and the training itself."""
    if img_per_s <= 0:
        raise ValueError(f"need img_per_s > 0, got {img_per_s}")
    scored = {m.split(":")[0] for m in methods}
    forward = (draws * n_train if scored & {"cv", "mean", "std"} else 0) + n_train * len(
        scored & {"el2n", "grand", "entropy", "margin"})
    runs = seeds * (1 + len(methods) * len(ratios) * len(budgets))
    fixed = runs * (run_overhead_s + evals_per_run * TEST_IMAGES * FORWARD_COST / img_per_s)
    fixed += forward * FORWARD_COST / img_per_s
    epochs = (budget_s - elapsed_s - fixed) * img_per_s / work_units(n_train, len(methods), ratios, seeds, budgets)
    return max(1, min(MAX_EPOCHS, math.floor(epochs)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="write DIR/measure.json: img/s and per-run start-up seconds")
    m.add_argument("--out", required=True)
    m.add_argument("--data-root", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--mix", required=True)
    m.add_argument("--batch-size", type=int, required=True)
    m.add_argument("--amp", default="none")
    m.add_argument("--channels-last", action="store_true")
    m.add_argument("--device", default="cuda")
    m.add_argument("--batches", type=int, default=100)
    m.add_argument("--threads", type=int, default=None)
    s = sub.add_parser("size", help="print EPOCHS=N for the shell")
    s.add_argument("--measure", required=True)
    s.add_argument("--methods", required=True)
    s.add_argument("--ratios", required=True)
    s.add_argument("--seeds", required=True)
    s.add_argument("--budgets", required=True, help="epochs, steps or both")
    s.add_argument("--draws", type=int, default=10)
    s.add_argument("--evals-per-run", type=int, default=2)
    s.add_argument("--budget-s", type=float, required=True)
    s.add_argument("--elapsed-s", type=float, required=True)
    r = sub.add_parser("record", help="write what ran where (device, torch, img/s, epochs, wall) as JSON")
    r.add_argument("--out", required=True)
    r.add_argument("--measure", required=True)
    r.add_argument("--epochs", type=int, required=True)
    r.add_argument("--wall-s", type=float, required=True)
    t = sub.add_parser("table", help="rewrite DIR/curve.md, curve.csv and curve.png from DIR/runs.csv + config.json")
    t.add_argument("dir")
    args = p.parse_args(argv)
    if args.cmd == "table":
        from kmix.select.prune_curve import read_runs, write_curve

        folder = Path(args.dir)
        cfg = json.loads((folder / "config.json").read_text())
        _, table = write_curve(folder, read_runs(folder / "runs.csv"), **{k: cfg[k] for k in (
            "data", "model", "mix", "seeds", "methods", "ratios", "budgets", "epochs")})
        print(table)
    elif args.cmd == "measure":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(out, args.data_root, args.model, args.mix, args.batch_size, args.amp,
                                 args.channels_last, args.device, args.batches, args.threads)))
    elif args.cmd == "size":
        meas = json.loads(Path(args.measure).read_text())
        budgets = ["epochs", "steps"] if args.budgets == "both" else [args.budgets]
        epochs = size_epochs(meas["img_per_s"], meas["run_overhead_s"], meas["train_images"],
                             args.methods.split(","), [float(x) for x in args.ratios.split(",")],
                             len(args.seeds.split(",")), budgets, args.draws, args.evals_per_run, args.budget_s,
                             args.elapsed_s)
        print(f"EPOCHS={epochs}\nMEASURED_IMG_PER_S={round(meas['img_per_s'])}\n"
              f"RUN_OVERHEAD_S={meas['run_overhead_s']:.1f}")
    else:
        import torch

        meas = json.loads(Path(args.measure).read_text())
        device = str(meas.get("device"))
        record = {"device": device, "device_name": torch.cuda.get_device_name(torch.device(device))
                  if device.startswith("cuda") else "cpu", "torch": torch.__version__, "cuda": torch.version.cuda,
                  "measured_img_per_s": meas["img_per_s"], "run_overhead_s": meas["run_overhead_s"],
                  "epochs": args.epochs, "wall_s": args.wall_s}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
