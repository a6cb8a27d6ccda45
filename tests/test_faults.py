"""kill -9, five times over, of train, score, search and prune-curve: each resumed run ends bit-identical to an
uninterrupted one (docs/reliability.md's first rows). One train kill lands inside a checkpoint write."""
from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kmix.cli.main import main
from kmix.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KILLS = 5
THREADS = ["--threads", str(torch.get_num_threads())]  # CPU results depend on the intra-op thread count


def _launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}  # as the in-process reference: results depend on it
    return subprocess.Popen([sys.executable, "-m", "kmix", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _glob(folder: Path, pattern: str) -> list[Path]:
    """folder.glob(pattern), retried when a folder vanishes mid-walk (the command removes its chunk folder)."""
    while True:
        try:
            return [p for p in folder.glob(pattern) if p.is_file()]
        except FileNotFoundError:
            continue


def _snapshot(folder: Path, pattern: str) -> dict[str, int]:
    out = {}
    for p in _glob(folder, pattern):
        try:
            out[str(p)] = p.stat().st_mtime_ns
        except FileNotFoundError:
            pass
    return out


def _temp_files(folder: Path) -> list[Path]:
    return _glob(folder, "**/*.tmp")


def kill_chain(args: list[str], resume_args: list[str], folder: Path, pattern: str, rng: random.Random,
               mid_write: int | None = None, deadline_s: float = 240) -> list[str]:
    """Run `args`, SIGKILL it KILLS times (each time after it saved new state matching `pattern` under
    `folder`, plus a random delay; kill number `mid_write` instead while a temp file of an atomic write
    exists), relaunch with `resume_args` after each, and let the last launch finish. Returns what each
    kill hit."""
    hits = []
    for kill in range(KILLS):
        before = _snapshot(folder, pattern)
        proc = _launch(args if kill == 0 else resume_args)
        deadline = time.monotonic() + deadline_s
        while _snapshot(folder, pattern) == before or not _snapshot(folder, pattern):
            assert proc.poll() is None, f"finished before kill {kill + 1}: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, f"no new state before kill {kill + 1}"
            time.sleep(0.002)
        if kill == mid_write:  # freeze it at random moments until it is caught inside a write
            while True:
                proc.send_signal(signal.SIGSTOP)
                if _temp_files(folder) or proc.poll() is not None:
                    break
                proc.send_signal(signal.SIGCONT)
                assert time.monotonic() < deadline, "never caught inside a write"
                time.sleep(rng.uniform(0, 0.003))
            assert proc.poll() is None, "finished before the mid-write kill"
            hits.append("inside a write: " + ", ".join(p.name for p in _temp_files(folder)))
        else:
            time.sleep(rng.uniform(0, 0.2))
            hits.append("between writes" if not _temp_files(folder) else "inside a write")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"kill {kill + 1} came too late (the run had ended)"
    proc = _launch(resume_args)
    _, err = proc.communicate(timeout=deadline_s)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert not _temp_files(folder), "a temp file of a killed write was left behind"
    return hits


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("img_per_s", "wall_s", "train_s")} for r in rows]


def _train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "small_cnn", "--model-arg", "width=8", "--mix", "dcutmix", "--k", "3",
            "--epochs", "3", "--batch-size", "32", "--limit-train-batches", "12", "--ckpt-every-steps", "2",
            "--seed", "5", "--no-tensorboard", "--no-plot", "--quiet", *THREADS, "--out", str(out), *extra]


@pytest.mark.slow
def test_train_killed_five_times_once_mid_write_resumes_bit_identically(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(_train_args(ref)) == 0
    hits = kill_chain(_train_args(run), _train_args(run, "--resume"), run, "last.pt", random.Random(0), mid_write=2)
    assert hits[2].startswith("inside a write")
    a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(run / "last.pt")
    _same_tensors(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert _strip_times(a["history"]) == _strip_times(b["history"])
    assert (ref / "metrics.jsonl").read_text().count("\n") == (run / "metrics.jsonl").read_text().count("\n") == 3


def _checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "model"
    assert main(["train", "--model", "small_cnn", "--model-arg", "width=8", "--epochs", "1",
                 "--limit-train-batches", "3", "--no-tensorboard", "--no-plot", "--quiet", "--out", str(out)]) == 0
    return out / "last.pt"


@pytest.mark.slow
def test_score_killed_five_times_resumes_to_the_same_bytes(tmp_path):
    ckpt = _checkpoint(tmp_path)

    def args(out: Path) -> list[str]:
        return ["score", "--checkpoint", str(ckpt), "--draws", "3", "--chunk-size", "40", "--batch-size", "60",
                "--device", "cpu", "--quiet", "--out", str(out)]

    assert main(args(tmp_path / "ref.csv")) == 0
    out = tmp_path / "run.csv"
    kill_chain(args(out), args(out), tmp_path, "run.csv.chunks/chunk_*.pt", random.Random(1))
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()


@pytest.mark.slow
def test_search_killed_five_times_resumes_bit_identically(tmp_path):
    def args(out: Path, *extra: str) -> list[str]:
        return ["search", "--epochs", "6", "--warmup", "2", "--layers", "3", "--channels", "4", "--limit", "48",
                "--batch-size", "24", "--seed", "2", "--device", "cpu", "--quiet", "--out", str(out), *extra]

    assert main(args(tmp_path / "ref")) == 0
    run = tmp_path / "run"
    kill_chain(args(run), args(run, "--resume"), run, "checkpoint.pt", random.Random(2))
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=False)
    b = torch.load(run / "checkpoint.pt", weights_only=False)
    _same_tensors(a["model"], b["model"])
    assert (run / "genotype.json").read_text() == (tmp_path / "ref" / "genotype.json").read_text()


def _rows(path: Path, drop: Callable[[str], bool]) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not drop(k)} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_prune_curve_killed_five_times_resumes_to_the_same_curve(tmp_path):
    def args(out: Path) -> list[str]:
        return ["prune-curve", "--data", "digits", "--ratios", "0.3", "--methods", "random,cv", "--seeds", "0",
                "--epochs", "2", "--model-arg", "width=4", "--draws", "2", "--limit-train-batches", "4",
                "--threads", str(torch.get_num_threads()), "--device", "cpu", "--quiet", "--out", str(out)]

    assert main(args(tmp_path / "ref")) == 0
    run = tmp_path / "run"
    kill_chain(args(run), args(run), run, "**/last.pt", random.Random(3))
    ignored = lambda k: "wall" in k or k.endswith("_s") or k == "subset"  # noqa: E731 (times; paths under --out)
    assert _rows(run / "runs.csv", ignored) == _rows(tmp_path / "ref" / "runs.csv", ignored)
    assert _rows(run / "curve.csv", ignored) == _rows(tmp_path / "ref" / "curve.csv", ignored)
    ref_runs = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").glob("runs/*/*/last.pt"))
    assert len(ref_runs) == 3 and ref_runs == sorted(p.relative_to(run) for p in run.glob("runs/*/*/last.pt"))
    for rel in ref_runs:  # every run of the curve: the same weights, bit for bit
        _same_tensors(load_checkpoint(tmp_path / "ref" / rel)["model"], load_checkpoint(run / rel)["model"])
