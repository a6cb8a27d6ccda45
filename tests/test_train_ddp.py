"""`torchrun --nproc_per_node=2` on CPU (gloo): the run finishes, rank 0 alone writes, resume works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmix.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "kmix", "train", "--device", "cpu", "--model-arg", "width=8", "--batch-size", "32",
           "--limit-train-batches", "3", "--lr", "0.05", "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_torchrun_two_processes_write_once_and_resume(tmp_path):
    out = tmp_path / "ddp"
    first = _torchrun(out, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # only rank 0 logs
    assert first.stdout.count('"top1_err"') == 1  # only rank 0 prints the summary
    state = load_checkpoint(out / "last.pt")
    assert len(state["rng"]) == 2 and state["global_step"] == 3  # both ranks' RNG states, global steps
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2

    second = _torchrun(out, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and lines[1]["steps"] == 6
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("events")) == \
        [".kmix.lock", "best.pt", "config.yaml", "curves.png", "last.pt", "metrics.jsonl", "summary.json"]  # no stray temp files
