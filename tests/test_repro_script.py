"""benchmarks/repro_cifar10_gpu.sh: its dry run (the whole script on CPU at tiny size, as CI runs it),
its argument errors, and the schedule sizing that makes the GPU run fit its time budget."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "repro_cifar10_gpu.sh"
_spec = importlib.util.spec_from_file_location("repro_support", ROOT / "benchmarks" / "repro_support.py")
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)


def _script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900)


def test_sizing_fills_the_budget_and_no_more():
    img_s, n_train, runs, budget, elapsed = 20_000.0, 10_000, 6, 480.0, 60.0
    sized = support.size_schedule(img_s, n_train, runs, budget, elapsed)
    epochs = sized["EPOCHS"]

    def script_s(e: int) -> float:  # the time model the sizing assumes
        return elapsed + runs * (support.STARTUP_S + e * n_train / img_s
                                 + support.EVALS_PER_RUN * support.TEST_IMAGES / (3 * img_s))

    assert script_s(epochs) <= budget < script_s(epochs + 1)
    assert sized["SCHEDULE"] == "step" and sized["MILESTONES"] == f"[{round(epochs / 2)},{round(epochs * 0.75)}]"
    assert sized["EVAL_EVERY"] == math.ceil(epochs / support.EVALS_PER_RUN)
    assert support.size_schedule(1.0, n_train, runs, budget, elapsed)["EPOCHS"] == 1  # never below one epoch
    assert support.schedule_for(1) == {"EPOCHS": 1, "EVAL_EVERY": 1, "SCHEDULE": "constant", "MILESTONES": "[]"}
    assert support.schedule_for(2)["MILESTONES"] == "[1]"
    with pytest.raises(ValueError, match="img_per_s > 0"):
        support.size_schedule(0.0, n_train, runs, budget, elapsed)


@pytest.mark.parametrize("args, message", [
    ((), "give the CIFAR-10 path"),
    (("/nonexistent/cifar10-jpg.tar.gz",), "CIFAR-10 path not found"),
    (("--bogus",), "unknown option --bogus"),
    (("a", "b"), "one CIFAR10 path"),
])
def test_script_argument_errors(args, message):
    result = _script(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
def test_dry_run_writes_the_table_for_every_method_and_seed(tmp_path):
    result = _script("--dry-run", "--out", str(tmp_path / "dry"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "dry"
    with open(out / "sweep" / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["mix"], r["model"], r["n"], r["seeds"], r["epochs"]) for r in rows] == [
        ("none", "resnet56", "2", "0;1", "2"), ("cutmix", "resnet56", "2", "0;1", "2"),
        ("dcutmix", "resnet56", "2", "0;1", "2")]
    assert all(0 <= float(r["top1_err_mean"]) <= 100 for r in rows)
    config = (out / "sweep" / "cifar10_resnet56_dcutmix" / "seed1" / "config.yaml").read_text()
    assert "channels_last: true" in config and f"subset: {out / 'subset.json'}" in config
    assert f"data_root: {out / 'tiny' / 'cifar10-tiny.tar.gz'}" in config  # the shared copy's format
    record = json.loads((out / "repro.json").read_text())
    assert record["measured_img_per_s"] > 0 and record["schedule"]["EPOCHS"] == "2"
    assert (out / "sweep" / "curves.png").is_file() and "repro: done" in result.stdout
