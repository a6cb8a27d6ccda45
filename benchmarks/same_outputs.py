"""Does a change keep `kmix train`'s outputs bit for bit? Trains three small configs with two checkouts and
compares what they wrote: metrics.jsonl and summary.json (timing fields aside), the weights and momentum of
last.pt and best.pt, and dynamics.pt's records.

    git worktree add /tmp/before REV                        # the checkout to compare with
    python benchmarks/same_outputs.py /tmp/before . --out /tmp/same

The configs: the quick-start (digits, small CNN, DCutMix K=5), a plain run recording dynamics, and
SaliencyDCutMix K=3 with Cutout, mid-epoch checkpoints and dynamics. One thread each (CPU results depend
on the thread count). Exit status 0 when every run is identical.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

CONFIGS = {
    "quick": [],
    "dyn": ["--mix", "none", "--epochs", "2", "--limit-train-batches", "6", "--record-dynamics"],
    "dyn_mix": ["--mix", "saliency-dcutmix", "--k", "3", "--epochs", "2", "--limit-train-batches", "6",
                "--record-dynamics", "--ckpt-every-steps", "4", "--cutout", "4"],
}
TIMING = {"img_per_s", "train_s", "wall_s", "out", "checkpoints"}


def train_all(checkout: Path, out: Path) -> None:
    """Every config trained with `checkout`'s kmix (first on PYTHONPATH) into out/<name>."""
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    for name, args in CONFIGS.items():
        cmd = [sys.executable, "-m", "kmix", "train", *args, "--threads", "1", "--quiet", "--out", str(out / name)]
        subprocess.run(cmd, env=env, check=True, cwd=checkout)


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def _tensors_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a.nan_to_num(), b.nan_to_num())
    return a == b


def differences(a: Path, b: Path) -> list[str]:
    """What differs between run folders a and b (empty: identical)."""
    diff = []
    if _records(a / "metrics.jsonl") != _records(b / "metrics.jsonl"):
        diff.append("metrics.jsonl")
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    diff += [f"summary.json:{k}" for k in sa if k not in TIMING and sa[k] != sb.get(k)]
    for name, keys in (("last.pt", ("model", "optimizer")), ("best.pt", ("model",)),
                       ("dynamics.pt", ("loss", "margin", "correct", "labels"))):
        if (a / name).exists() != (b / name).exists():
            diff.append(f"{name} present in one only")
        elif (a / name).exists():
            ta, tb = (torch.load(p / name, weights_only=False) for p in (a, b))
            diff += [f"{name}:{k}" for k in keys if k in ta and not _tensors_equal(ta[k], tb.get(k))]
    return diff


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="checkout to compare with (e.g. a git worktree of the old commit)")
    p.add_argument("after", type=Path, help="checkout with the change")
    p.add_argument("--out", type=Path, required=True, help="folder for both sets of runs")
    args = p.parse_args(argv)
    for side, checkout in (("before", args.before), ("after", args.after)):
        if not (args.out / side / "quick" / "summary.json").exists():
            train_all(checkout, args.out / side)
    same = True
    for name in CONFIGS:
        diff = differences(args.out / "before" / name, args.out / "after" / name)
        same &= not diff
        print(f"{name}: " + ("identical" if not diff else "DIFFERENT: " + ", ".join(diff)))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
