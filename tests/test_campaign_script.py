"""benchmarks/campaign.py (issue 21): the pre-registered plan as planned, the time estimates, and its dry run
(the whole runner on the CPU at tiny size): the archive, the skip of recorded runs, the budget rule, the order."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "campaign.py"
PLAN = ROOT / "benchmarks" / "plans" / "c10_preact18_200ep.yaml"
_spec = importlib.util.spec_from_file_location("campaign", SCRIPT)
campaign = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(campaign)

NAME = "c10-preact18-200ep"
P = "cifar10_preactresnet18_"
TIERS = (("vanilla", "cutmix", "dcutmix"), ("mixup", "dmixup"), ("dcutmix+k=2+alpha=1+p=0.5",))
ORDER = [f"{P}{m}/seed{s}" for tier in TIERS for s in (0, 1, 2) for m in tier]  # tier by tier, seed-major
RECORDS = {"config.yaml", "metrics.jsonl", "summary.json", "campaign.json", "calls.jsonl", "hessian.json", "fgsm.json",
           "ood.json",
           "run.log"}


def test_the_plan_is_the_preregistered_protocol(tmp_path):
    plan = campaign.load_plan(PLAN, dry=False)
    runs = campaign.planned_runs(plan, tmp_path, {"data_root": plan["data_root"]})
    assert [f"{r.out.parent.name}/{r.out.name}" for _, _, r in runs] == ORDER
    for name, _, run in runs:
        c = run.config
        assert (c.model, c.data, c.epochs, c.batch_size, c.lr, c.momentum, c.nesterov, c.weight_decay) == (
            "preact_resnet18", "cifar10", 200, 128, 0.1, 0.9, False, 1e-4)
        assert (c.schedule, c.milestones, c.gamma, c.augment, c.subset, c.limit_train_batches) == (
            "step", [100, 150], 0.1, True, None, None)
        assert (c.amp, c.channels_last, c.device, c.data_root) == ("bf16", True, "cuda", ".gpu-data/cifar10-jpg.tar.gz")
        expected = {"vanilla": ("none", None, None, None), "cutmix": ("cutmix", 2, 1.0, 0.5),
                    "dcutmix-k3": ("dcutmix", 3, 1 / 3, 1.0), "mixup": ("mixup", 2, 1.0, 1.0),
                    "dmixup-k5": ("dmixup", 5, 0.2, 1.0), "dcutmix-k2": ("dcutmix", 2, 1.0, 0.5)}[name]
        assert c.mix == expected[0] and (c.mix == "none" or (c.k, c.alpha, c.p) == pytest.approx(expected[1:]))
    assert plan["seeds"] == [0, 1, 2] and plan["min_seeds"] == 3 and plan["reference"] == "vanilla"


def test_estimates_prefer_the_same_method_then_any_method_then_the_probe():
    run = SimpleNamespace(config=SimpleNamespace(epochs=200, limit_train_batches=None, batch_size=128, eval_every=10),
                          out=Path("/nonexistent/run"))  # no folder: a new run
    done = [{"method": "vanilla", "gpu": "H", "jobs": 1, "epochs": 200, "process_s": 300.0},
            {"method": "vanilla", "gpu": "H", "jobs": 1, "epochs": 200, "process_s": 340.0},
            {"method": "cutmix", "gpu": "H", "jobs": 1, "epochs": 200, "process_s": 360.0},
            {"method": "mixup", "gpu": "other GPU", "jobs": 1, "epochs": 200, "process_s": 900.0},
            {"method": "mixup", "gpu": "H", "jobs": 2, "epochs": 200, "process_s": 900.0}]
    assert campaign.estimate("vanilla", run, done, "H", 1, None)[0] == pytest.approx(320.0)
    secs, how = campaign.estimate("mixup", run, done, "H", 1, None)  # no mixup on H with jobs 1: the slowest other
    assert secs == 360.0 and "slowest" in how
    assert campaign.estimate("mixup", run, done, "H", 3, None) is None  # nothing comparable: a probe is needed
    probe = {"method": "dcutmix-k3", "jobs": 3, "img_per_s": 20_000.0, "eval_s": 0.5, "process_s": 30.0,
             "train_images": 50_000}
    secs, how = campaign.estimate("mixup", run, done, "H", 3, probe)
    assert secs == pytest.approx(30.0 + 200 * 390 * 128 / 20_000 + 20 * 0.5) and "warm probe" in how


def _dry(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(PLAN), "--dry-run", "--out", str(out), *args],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _archived_runs(archive: Path) -> dict[str, set[str]]:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert all(n.startswith(NAME + "/") for n in names) and not any(n.endswith(".pt") for n in names)
    for f in ("table.md", "table.csv", "curves.png", "campaign.md"):
        assert f"{NAME}/{f}" in names
    runs: dict[str, set[str]] = {}
    for n in names:
        parts = n.split("/")
        if len(parts) == 4 and parts[2].startswith("seed"):
            runs.setdefault(f"{parts[1]}/{parts[2]}", set()).add(parts[3])
    return runs


@pytest.mark.slow
def test_dry_run_skips_recorded_runs_keeps_the_order_and_the_budget(tmp_path):
    # window 1: nothing recorded -> a warm probe (2 at once), runs 2 at a time until the next cannot fit
    first = _dry(tmp_path / "w1", "--records", str(tmp_path / "none"), "--jobs", "2", "--budget-s", "120")
    assert "warm probe" in first.stdout and "not started:" in first.stdout  # the budget rule says so
    runs1 = _archived_runs(tmp_path / "w1" / f"{NAME}.tar.gz")
    k1 = len(runs1)
    assert 1 <= k1 < len(ORDER) and sorted(runs1, key=ORDER.index) == ORDER[:k1]  # the first runs by priority
    assert all(files == RECORDS for files in runs1.values())
    some = tmp_path / "w1" / "runs" / ORDER[0]
    record = json.loads((some / "campaign.json").read_text())
    assert record["gpu"] == "cpu" and record["jobs"] == 2 and record["process_s"] > 0
    assert math.isfinite(json.loads((some / "hessian.json").read_text())["top_eigenvalue"])
    assert 0 <= json.loads((some / "fgsm.json").read_text())["fgsm_top1"] <= 100
    assert json.loads((some / "ood.json").read_text())["n_ood"] == 24

    # the records are committed (extracted into the records folder); window 2 skips them and goes on in order
    with tarfile.open(tmp_path / "w1" / f"{NAME}.tar.gz") as tar:
        tar.extractall(tmp_path / "results", filter="data")
    # a budget from window 1's own run times (a loaded machine is slower in both windows): room for a run or
    # two past the reserve, never for all the runs left
    slowest = max(json.loads((tmp_path / "w1" / "runs" / r / "campaign.json").read_text())["process_s"] for r in runs1)
    budget = campaign.load_plan(PLAN, dry=True).get("reserve_s", 15) + 2.5 * slowest
    second = _dry(tmp_path / "w2", "--records", str(tmp_path / "results" / NAME), "--jobs", "2",
                  "--budget-s", f"{budget:.0f}", "--data-root", str(tmp_path / "w1" / "tiny" / "cifar10-tiny.tar.gz"))
    for run in runs1:
        label, seed = run.split("/")
        assert f"finished earlier, skipped: {label} seed {seed[4:]} (from the records)" in second.stdout
    assert "warm probe" not in second.stdout and "earlier" in second.stdout  # estimated from the records
    assert "not started:" in second.stdout
    runs2 = _archived_runs(tmp_path / "w2" / f"{NAME}.tar.gz")  # only what is new
    assert runs2 and not set(runs2) & set(runs1)
    assert sorted(runs2, key=ORDER.index) == ORDER[k1:k1 + len(runs2)]
    with open(tmp_path / "w2" / "table" / "table.csv", newline="") as f:  # the table of everything so far
        rows = list(csv.DictReader(f))
    assert sum(int(r["n"]) for r in rows) == k1 + len(runs2)
    # the stop rule: a method with < 3 seeds is not read; one with 3 (and vanilla's 3) gets a mean difference
    reading = (tmp_path / "w2" / "table" / "campaign.md").read_text()
    if any(int(r["n"]) < 3 for r in rows):
        assert "not read" in reading
    vanilla = [int(r["n"]) for r in rows if r["mix"] == "none"]
    if vanilla and vanilla[0] >= 3 and any(int(r["n"]) >= 3 for r in rows if r["mix"] != "none"):
        assert "mean difference" in reading


def test_admit_starts_a_run_that_fits_and_with_finish_later_one_that_does_not():
    assert campaign.admit(100, 200, finish_later=False, min_left_s=60) == (True, False)
    assert campaign.admit(300, 200, finish_later=False, min_left_s=60) == (False, False)
    assert campaign.admit(300, 200, finish_later=True, min_left_s=60) == (True, True)  # cut, resumed next call
    assert campaign.admit(300, 50, finish_later=True, min_left_s=60) == (False, False)  # too little left to start


@pytest.mark.slow
def test_a_cut_off_run_is_estimated_by_its_epochs_left_and_resumed_by_the_next_call(tmp_path):
    """What a call cut at the budget leaves (a checkpoint after epoch 1 of 2) is resumed by the next call with
    the same --out, estimated from the epochs left; every call's seconds go into calls.jsonl."""
    from kmix.train import TrainingStopped, fit

    work = tmp_path / "w"
    tiny = campaign.tiny_data(work, make_cifar=True)
    plan = campaign.load_plan(PLAN, dry=True)
    runs = campaign.planned_runs(plan, work / "runs", {"data_root": str(tiny / "cifar10-tiny.tar.gz")})
    name, _, first = runs[0]
    with pytest.raises(TrainingStopped):  # 2 batches per epoch: step 3 is inside epoch 2, epoch 1 is recorded
        fit(first.config, stop_after_steps=3)
    assert campaign.epochs_done(first) == 1
    probe = {"method": name, "jobs": 1, "img_per_s": 100.0, "eval_s": 1.0, "process_s": 10.0, "train_images": 32}
    whole, _ = campaign.whole_run_estimate(name, first, [], "cpu", 1, probe)
    secs, how = campaign.estimate(name, first, [], "cpu", 1, probe, resume_overhead_s=7.0)
    assert secs == pytest.approx(whole / 2 + 7.0) and "1 of 2 epochs done" in how

    result = _dry(work, "--records", str(tmp_path / "none"), "--data-root", str(tiny / "cifar10-tiny.tar.gz"),
                  "--budget-s", "150")
    assert "1 of 2 epochs done in an earlier call" in result.stdout
    assert f"finished {name} seed 0" in result.stdout
    metrics = [json.loads(x) for x in (first.out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics] == [1, 2]  # epoch 1 kept from the cut call, epoch 2 trained now
    calls = [json.loads(x) for x in (first.out / "calls.jsonl").read_text().splitlines()]
    record = json.loads((first.out / "campaign.json").read_text())
    assert calls[-1]["finished"] and record["calls"] == len(calls)
    assert record["process_s"] == pytest.approx(sum(c["process_s"] for c in calls))
    assert record["train_flops_per_image"] > 0 and record["train_tflop_per_s"] > 0


def test_a_failing_compiled_probe_falls_back_to_uncompiled_runs(tmp_path, monkeypatch):
    plan = campaign.load_plan(PLAN, dry=False)
    runs = campaign.planned_runs(plan, tmp_path, {"data_root": plan["data_root"]})
    assert all(run.config.compile for _, _, run in runs)  # the plan compiles
    seen = []

    def probe(plan_, runs_, *args):
        seen.append([run.config.compile for _, _, run in runs_])
        if any(seen[-1]):
            raise campaign.ProbeFailed("the probe failed; see logs")
        return {"img_per_s": 1.0}

    monkeypatch.setattr(campaign, "run_probe", probe)
    result, fallen_back = campaign.probe_or_fall_back(plan, runs, tmp_path, 1, {})
    assert result == {"img_per_s": 1.0} and len(seen) == 2 and not any(seen[1])
    assert not any(run.config.compile for _, _, run in fallen_back)
    assert [run.out for _, _, run in fallen_back] == [run.out for _, _, run in runs]
