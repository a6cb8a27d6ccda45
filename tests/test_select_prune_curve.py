"""prune-curve: runs per (method, ratio, seed), resume skips finished runs, mean/std over seeds, plot; errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from kmix.select import prune_curve as pc
from kmix.select.prune_curve import PruneCurveConfig, aggregate, parse_method, run_prune_curve
from kmix.select.score import ScoreSpec


def _checkpoint(path):
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=1, width=4)
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=4)})
    return str(path)


def test_parse_method():
    assert parse_method("cv") == ("cv", "high", "top")
    assert parse_method("mean:low") == ("mean", "low", "top")
    assert parse_method("cv:high:interval") == ("cv", "high", "interval")
    for bad in ("entropy", "cv:up", "cv:high:every", "cv:high:top:x"):
        with pytest.raises(ValueError, match="bad method"):
            parse_method(bad)


def test_aggregate_mean_and_sample_std():
    rows = [{"method": "cv", "ratio": "0.1", "seed": s, "n_train": 10, "top1_err": e}
            for s, e in [(0, 10.0), (1, 14.0), (2, 12.0)]]
    rows.append({"method": "random", "ratio": "0.1", "seed": 0, "n_train": 10, "top1_err": 20.0})
    out = {r["method"]: r for r in aggregate(rows)}
    assert out["cv"]["err_mean"] == pytest.approx(12.0) and out["cv"]["err_std"] == pytest.approx(2.0)
    assert out["random"]["err_std"] == 0.0 and out["random"]["n_seeds"] == 1


@pytest.mark.slow
def test_resume_skips_finished_runs(tmp_path, monkeypatch):
    calls = []

    def fake_train(config, run_dir, seed, subset, epochs):
        calls.append((run_dir.name, seed))
        assert epochs == 10
        n = len(json.loads(open(subset).read())["indices"]) if subset else 1437
        return {"top1_err": 100.0 * (1 - n / 1437) + seed, "best_top1_err": 0.0}

    monkeypatch.setattr(pc, "_train", fake_train)
    ckpt = _checkpoint(tmp_path / "m.pt")
    config = PruneCurveConfig(checkpoint=ckpt, ratios=(0.1, 0.5), methods=("cv", "random"), seeds=(0, 1), epochs=10,
                              score=ScoreSpec(draws=2, chunk_size=2000), out=str(tmp_path / "pc"))
    result = run_prune_curve(config)
    assert len(calls) == 2 + 2 * 2 * 2
    with open(tmp_path / "pc" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["ratio"], r["seed"]) for r in rows} == (
        {("full", "1", "0"), ("full", "1", "1")} | {(m, r, s) for m in ("cv", "random") for r in ("0.1", "0.5")
                                                     for s in ("0", "1")})
    cv01 = next(c for c in result["curve"] if c["method"] == "cv" and c["ratio"] == 0.1)
    assert cv01["n_train"] == 145 and cv01["err_mean"] == pytest.approx(100 * (1 - 145 / 1437) + 0.5)
    assert cv01["err_std"] == pytest.approx(np.std([0, 1], ddof=1))
    assert (tmp_path / "pc" / "curve.png").stat().st_size > 1000
    calls.clear()
    run_prune_curve(config)
    assert calls == []  # everything finished: nothing retrained
    run_prune_curve(PruneCurveConfig(**{**config.__dict__, "seeds": (0, 1, 2)}))
    assert sorted(calls) == sorted([("seed2", 2)] + [(f"{m}_T{r}_s2", 2) for m in ("cv", "random")
                                                     for r in ("0.1", "0.5")])
    with open(tmp_path / "pc" / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert {c["n_seeds"] for c in curve} == {"3"}
    with pytest.raises(ValueError, match="other settings.*epochs: 10 -> 12"):
        run_prune_curve(PruneCurveConfig(**{**config.__dict__, "epochs": 12}))


def test_equal_steps_epochs():
    from kmix.select.prune_curve import subset_epochs

    assert subset_epochs(10, 1437, 145, equal_steps=False) == 10
    assert subset_epochs(10, 1437, 145, equal_steps=True) == 99  # 10 * 1437 / 145 = 99.1
    assert subset_epochs(10, 1437, 1437, equal_steps=True) == 10


def test_bad_config(tmp_path):
    with pytest.raises(ValueError, match="ratios must be in"):
        run_prune_curve(PruneCurveConfig(ratios=(0.0, 0.5), out=str(tmp_path)))
    with pytest.raises(ValueError, match="bad method"):
        run_prune_curve(PruneCurveConfig(methods=("cv", "nope"), out=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        run_prune_curve(PruneCurveConfig(checkpoint=str(tmp_path / "x.pt"), out=str(tmp_path)))
    with pytest.raises(ValueError, match="full-data run"):
        run_prune_curve(PruneCurveConfig(full=False, out=str(tmp_path)))


@pytest.mark.slow
def test_cli_end_to_end_tiny(tmp_path):
    from kmix.cli.main import main

    ckpt = _checkpoint(tmp_path / "m.pt")
    out = tmp_path / "pc"
    rc = main(["prune-curve", "--checkpoint", ckpt, "--no-full", "--ratios", "0.1", "--methods", "cv",
               "--seeds", "0", "--epochs", "1", "--draws", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    with open(out / "curve.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["method"] == "cv" and row["n_train"] == "145" and 0 <= float(row["err_mean"]) <= 100
    assert (out / "runs" / "cv_T0.1_s0" / "last.pt").is_file() and (out / "curve.png").is_file()
