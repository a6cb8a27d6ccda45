"""benchmarks/prune_cifar10_gpu.sh: its dry run (the whole script on CPU at tiny size, as CI runs it), its
argument errors, and the epoch sizing that makes the GPU run fit its time budget."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "prune_cifar10_gpu.sh"
_spec = importlib.util.spec_from_file_location("prune_support", ROOT / "benchmarks" / "prune_support.py")
support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(support)
METHODS = ["random", "cv", "cv:ccs", "el2n:ccs", "forgetting:ccs", "aum:ccs"]


def _script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900)


def test_sizing_fills_the_budget_and_no_more():
    img_s, overhead, n, ratios, seeds, elapsed = 25_000.0, 3.0, 50_000, [0.1, 0.3, 0.5], 2, 30.0

    def script_s(epochs: int, budgets: list[str]) -> float:  # the time model, written out for this case
        runs = seeds * (1 + len(METHODS) * len(ratios) * len(budgets))
        scoring = (10 * n + n) * support.FORWARD_COST / img_s  # kmix-cv's 10 draws, EL2N's one pass
        evals = runs * 2 * support.TEST_IMAGES * support.FORWARD_COST / img_s
        per_epoch = seeds * n + sum(seeds * len(METHODS) * (sum(ratios) if b == "epochs" else len(ratios)) * n
                                    for b in budgets)
        return elapsed + runs * overhead + scoring + evals + epochs * per_epoch / img_s

    for budgets, budget in ((["epochs"], 300.0), (["epochs", "steps"], 900.0)):
        epochs = support.size_epochs(img_s, overhead, n, METHODS, ratios, seeds, budgets, 10, 2, budget, elapsed)
        assert epochs >= 2 and script_s(epochs, budgets) <= budget < script_s(epochs + 1, budgets), budgets
    budget = 300.0
    assert support.size_epochs(1.0, overhead, n, METHODS, ratios, seeds, ["epochs"], 10, 2, budget, elapsed) == 1
    with pytest.raises(ValueError, match="img_per_s > 0"):
        support.size_epochs(0.0, overhead, n, METHODS, ratios, seeds, ["epochs"], 10, 2, budget, elapsed)


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
def test_dry_run_writes_the_table_for_every_method_ratio_and_seed(tmp_path):
    result = _script("--dry-run", "--out", str(tmp_path / "dry"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "dry"
    with open(out / "curve" / "curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["ratio"]) for r in rows if r["method"] != "full"} == {
        (m, r) for m in METHODS for r in ("0.1", "0.3", "0.5")}
    assert all(r["n_seeds"] == "2" and 0 <= float(r["err_mean"]) <= 100 for r in rows)
    assert {r["n_train"] for r in rows} == {"10", "30", "50", "100"}  # 10 images per class in the tiny copy
    config = json.loads((out / "curve" / "config.json").read_text())
    assert config["model"] == "resnet20" and config["mix"] == "none" and config["epochs"] == 2
    for name in ("scores.csv", "scores_el2n.csv", "scores_forgetting.csv", "scores_aum.csv"):
        assert (out / "curve" / name).is_file(), name
    assert (out / "curve" / "runs" / "full" / "seed0" / "dynamics.pt").is_file()
    record = json.loads((out / "prune.json").read_text())
    assert record["measured_img_per_s"] > 0 and record["epochs"] == 2
    assert "| `aum:ccs` | aum (low first) | ccs |" in result.stdout and "prune: done" in result.stdout
    # the table comes back from the committed records alone (runs.csv + config.json), without the runs
    curve_md = (out / "curve" / "curve.md").read_text()
    kept = tmp_path / "records"
    kept.mkdir()
    for name in ("runs.csv", "config.json"):
        (kept / name).write_bytes((out / "curve" / name).read_bytes())
    assert support.main(["table", str(kept)]) == 0
    assert (kept / "curve.md").read_text() == curve_md and (kept / "curve.png").is_file()
