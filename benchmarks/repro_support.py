"""Helpers of benchmarks/repro_cifar10_gpu.sh: a tiny CIFAR-10 JPEG .tar.gz for --dry-run, the schedule
that fits the time budget (from the measured img/s), and the record of what ran where.

    python benchmarks/repro_support.py tiny-cifar10 DIR            # DIR/cifar10-tiny.tar.gz, 10+2 JPEGs per class
    python benchmarks/repro_support.py size --measure RUN --subset S.json --runs 6 --budget-s 480 --elapsed-s 60
    python benchmarks/repro_support.py record --out OUT/repro.json --measure RUN --sweep OUT/sweep --size OUT/size.env
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEST_IMAGES = 10_000  # the CIFAR-10 test set every run evaluates on
EVALS_PER_RUN = 20  # eval_every is chosen so that a run evaluates about this often
STARTUP_S = 15.0  # per run: model build, data on the device, first-step warm-up (a guess; budget slack)


def tiny_cifar10(folder: Path, train_per_class: int = 10, test_per_class: int = 2, seed: int = 0) -> Path:
    """FOLDER/cifar10-tiny.tar.gz: the layout of the shared CIFAR-10 copy (train/<class>/NNNN.jpg,
    test/<class>/NNNN.jpg) with random-pixel JPEGs, for the CPU dry run; returns the archive's path."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar10-tiny.tar.gz"
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for split, n in (("train", train_per_class), ("test", test_per_class)):
            for name in CIFAR10_CLASSES:
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
                    info = tarfile.TarInfo(f"{split}/{name}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)
    tmp.replace(path)
    return path


def size_schedule(img_per_s: float, train_images: int, runs: int, budget_s: float, elapsed_s: float,
                  max_epochs: int = 300) -> dict[str, object]:
    """Epochs that fit the budget left, an eval interval (~EVALS_PER_RUN evaluations) and the step
    schedule's milestones at 50% and 75% of the epochs (the shape of the recipes' schedules)."""
    if img_per_s <= 0 or train_images < 1 or runs < 1:
        raise ValueError(f"need img_per_s > 0, train_images >= 1, runs >= 1; got {img_per_s}, {train_images}, {runs}")
    per_run = (budget_s - elapsed_s) / runs - STARTUP_S
    eval_s = EVALS_PER_RUN * TEST_IMAGES / (3 * img_per_s)  # a forward pass costs about a third of a step
    epochs = max(1, min(max_epochs, math.floor((per_run - eval_s) * img_per_s / train_images)))
    return schedule_for(epochs)


def schedule_for(epochs: int) -> dict[str, object]:
    """eval_every and the x0.1 milestones at 50% / 75% of `epochs` (constant lr when no milestone fits)."""
    milestones = sorted({m for m in (round(0.5 * epochs), round(0.75 * epochs)) if 1 <= m < epochs})
    return {"EPOCHS": epochs, "EVAL_EVERY": max(1, math.ceil(epochs / EVALS_PER_RUN)),
            "SCHEDULE": "step" if milestones else "constant",
            "MILESTONES": "[" + ",".join(map(str, milestones)) + "]"}


def _summary(run: str) -> dict:
    path = Path(run) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no summary.json in {run}: did the measuring run finish?")
    return json.loads(path.read_text())


def _subset_size(path: str) -> int:
    value = json.loads(Path(path).read_text())
    return len(value["indices"] if isinstance(value, dict) else value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tiny-cifar10", help="write DIR/cifar10-tiny.tar.gz; print its path")
    t.add_argument("folder")
    s = sub.add_parser("size", help="print EPOCHS=, EVAL_EVERY=, SCHEDULE=, MILESTONES= for the shell")
    s.add_argument("--measure", required=True, help="run folder of the measuring run")
    s.add_argument("--subset", required=True)
    s.add_argument("--runs", type=int, required=True)
    s.add_argument("--budget-s", type=float, required=True)
    s.add_argument("--elapsed-s", type=float, required=True)
    s.add_argument("--epochs", type=int, default=None, help="fixed epochs instead of sizing from img/s")
    r = sub.add_parser("record", help="write what ran where (device, torch, img/s, schedule, wall) as JSON")
    r.add_argument("--out", required=True)
    r.add_argument("--measure", required=True)
    r.add_argument("--size", required=True)
    r.add_argument("--wall-s", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "tiny-cifar10":
        print(tiny_cifar10(Path(args.folder)))
    elif args.cmd == "size":
        img_s = _summary(args.measure)["img_per_s"]
        sized = schedule_for(args.epochs) if args.epochs else size_schedule(
            img_s, _subset_size(args.subset), args.runs, args.budget_s, args.elapsed_s)
        print("\n".join(f"{k}={v}" for k, v in {**sized, "MEASURED_IMG_PER_S": round(img_s)}.items()))
    else:
        import torch

        summary = _summary(args.measure)
        size = dict(line.split("=", 1) for line in Path(args.size).read_text().split() if "=" in line)
        device = str(summary.get("device"))
        record = {"device": device, "device_name": torch.cuda.get_device_name(torch.device(device))
                  if device.startswith("cuda") else "cpu", "torch": torch.__version__,
                  "cuda": torch.version.cuda, "measured_img_per_s": summary.get("img_per_s"),
                  "schedule": size, "wall_s_this_call": args.wall_s}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
