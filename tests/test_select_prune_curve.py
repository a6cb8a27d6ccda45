"""prune-curve: sweep runs per (budget, method, ratio, seed) on one TrainConfig, resume skips finished runs,
kmix table with the ratio axis, mean/std over seeds, plot; errors."""
from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from kmix.select import prune_curve as pc
from kmix.select.kmix_cv import ScoreSpec
from kmix.select.prune_curve import PruneCurveConfig, aggregate, parse_method, run_prune_curve
from kmix.train.config import TrainConfig, default_values

TINY = {"data": "digits", "model_kwargs": {"width": 4}, "epochs": 1, "limit_train_batches": 2, "threads": 1,
        "device": "cpu", "tensorboard": False, "plot": False}  # a run of the curve in about a second


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
    assert parse_method("el2n:ccs") == ("el2n", "high", "ccs") == parse_method("el2n:ccs:high")
    assert parse_method("aum:ccs") == ("aum", "low", "ccs")  # the column's own hard end
    assert parse_method("forgetting") == ("forgetting", "high", "top")
    assert pc.score_method_of("cv:ccs") == "kmix-cv" and pc.score_method_of("aum") == "aum"
    assert pc.score_method_of("random") is None
    for bad in ("nope", "loss_3", "cv:up", "cv:high:every", "cv:high:top:x", "cv:ccs:top", "cv:low:high"):
        with pytest.raises(ValueError, match="bad method"):
            parse_method(bad)


def test_aggregate_mean_and_sample_std():
    rows = [{"method": "cv", "ratio": "0.1", "seed": s, "n_train": 10, "top1_err": e}
            for s, e in [(0, 10.0), (1, 14.0), (2, 12.0)]]
    rows.append({"method": "random", "ratio": "0.1", "seed": 0, "n_train": 10, "top1_err": 20.0})
    out = {r["method"]: r for r in aggregate(rows)}
    assert out["cv"]["err_mean"] == pytest.approx(12.0) and out["cv"]["err_std"] == pytest.approx(2.0)
    assert out["random"]["err_std"] == 0.0 and out["random"]["n_seeds"] == 1


def test_runs_are_one_train_config_with_per_run_overrides(tmp_path):
    """The curve declares no training field: its runs start from kmix train's defaults (K=5, alpha=0.2), `train`
    and a recipe override them, and the fields the curve sets per run are refused."""
    curve_fields = {f.name for f in dataclasses.fields(PruneCurveConfig)}
    assert curve_fields & set(default_values()) <= {"out", "quiet"}  # the curve's own folder and progress bar
    base = PruneCurveConfig().base_config()
    assert (base.k, base.alpha, base.epochs, base.quiet) == (TrainConfig().k, TrainConfig().alpha, 15, True)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("k: 3\nalpha: 1.0\nlr: 0.05\nseed: 7\nmodel_kwargs: {width: 4}\n")
    base = PruneCurveConfig(recipe=str(recipe), train={"lr": 0.2, "model_kwargs": {"depth": 2}}).base_config()
    assert (base.k, base.alpha, base.lr, base.seed) == (3, 1.0, 0.2, 0)  # the curve sets seeds itself
    assert base.model_kwargs == {"width": 4, "depth": 2}
    for owned in ("seed", "subset", "out"):
        with pytest.raises(ValueError, match=f"train may not set {owned}: prune-curve sets it per run"):
            PruneCurveConfig(train={owned: None}).validate()
    with pytest.raises(ValueError, match="prune-curve training settings: unknown key.*epoch\\b"):
        PruneCurveConfig(train={"epoch": 3}).validate()


@pytest.mark.slow
def test_resume_skips_finished_runs_and_the_table_pools_seeds(tmp_path):
    """Real tiny runs: a rerun trains nothing, a third seed trains only its runs, table.md/csv is kmix table with
    the method and ratio axes (seeds pooled), and a run folder of other training settings is refused by name."""
    lines = []
    ckpt = _checkpoint(tmp_path / "m.pt")
    config = PruneCurveConfig(checkpoint=ckpt, ratios=(0.1, 0.5), methods=("cv", "random"), seeds=(0, 1),
                              train=TINY, score=ScoreSpec(draws=2, chunk_size=2000), out=str(tmp_path / "pc"))
    result = run_prune_curve(config, log=lines.append)
    assert len(lines) == 2 + 2 * 2 * 2 and not any("skipped" in line for line in lines)
    out = tmp_path / "pc"
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["ratio"], r["seed"]) for r in rows} == (
        {("full", "1", "0"), ("full", "1", "1")} | {(m, r, s) for m in ("cv", "random") for r in ("0.1", "0.5")
                                                     for s in ("0", "1")})
    cv01 = next(c for c in result["curve"] if c["method"] == "cv" and c["ratio"] == 0.1)
    assert cv01["n_train"] == 145 and cv01["budget"] == "epochs" and cv01["n_seeds"] == 2
    errs = [float(r["top1_err"]) for r in rows if (r["method"], r["ratio"]) == ("cv", "0.1")]
    assert cv01["err_mean"] == pytest.approx(np.mean(errs)) and cv01["err_std"] == pytest.approx(np.std(errs, ddof=1))
    saved = (out / "runs" / "epochs" / "cv_T0.1_s1" / "config.yaml").read_text()
    assert "k: 5\n" in saved and "alpha: 0.2\n" in saved and "seed: 1\n" in saved  # kmix train's defaults
    with open(out / "table.csv") as f:
        table = {(r["method"], r["ratio"]): r for r in csv.DictReader(f)}
    assert set(table) == {("full", "1.0"), ("cv", "0.1"), ("cv", "0.5"), ("random", "0.1"), ("random", "0.5")}
    assert table[("cv", "0.1")]["n"] == "2" and table[("cv", "0.1")]["seeds"] == "0;1"
    assert float(table[("cv", "0.1")]["top1_err_mean"]) == pytest.approx(np.mean(errs))
    header = (out / "table.md").read_text().splitlines()[0]
    assert " method |" in header and " ratio |" in header and " K |" in header  # kmix table's columns + the axes
    assert (out / "curve.png").stat().st_size > 1000
    lines.clear()
    run_prune_curve(config, log=lines.append)
    assert len(lines) == 10 and all("finished earlier, skipped" in line for line in lines)
    lines.clear()
    run_prune_curve(dataclasses.replace(config, seeds=(0, 1, 2)), log=lines.append)
    trained = sorted(line.split(":")[0].split("] ")[1] for line in lines if "skipped" not in line)
    assert trained == sorted(["full seed 2"] + [f"epochs {m} T={r} seed 2" for m in ("cv", "random")
                                                 for r in ("0.1", "0.5")])
    with open(out / "curve.csv") as f:
        assert {c["n_seeds"] for c in csv.DictReader(f)} == {"3"}
    with pytest.raises(ValueError, match=r"seed0 holds a run with other settings \(k: 5 -> 3; alpha: 0.2 -> 1.0\)"):
        run_prune_curve(dataclasses.replace(config, train={**TINY, "k": 3, "alpha": 1.0}))
    with pytest.raises(ValueError, match="holds a curve with other settings.*score"):
        run_prune_curve(dataclasses.replace(config, score=ScoreSpec(draws=3, chunk_size=2000)))


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
    with pytest.raises(ValueError, match="k must be"):
        run_prune_curve(PruneCurveConfig(train={"k": 1}, out=str(tmp_path)))
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
    assert (out / "runs" / "epochs" / "cv_T0.1_s0" / "last.pt").is_file() and (out / "curve.png").is_file()
    assert (out / "table.md").is_file() and (out / "table.csv").is_file()


ISSUE_METHODS = ("random", "cv", "cv:ccs", "el2n:ccs", "forgetting:ccs", "aum:ccs")


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """A real 4-epoch digits run with --record-dynamics (every image is seen at least once)."""
    from kmix.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("recorded") / "run"
    fit(TrainConfig(data="digits", model="small_cnn", model_kwargs={"width": 4}, epochs=4, batch_size=64, lr=0.05,
                    out=str(out), quiet=True, tensorboard=False, plot=False, seed=0, record_dynamics=True))
    return out


@pytest.mark.slow
def test_issue_methods_score_once_each_under_both_budgets(tmp_path, recorded_run):
    """random, kmix-cv top/CCS, EL2N/forgetting/AUM CCS under both budgets (real tiny runs): each score method
    runs once (the dynamics ones on the recorded run), subsets are shared by the budgets, equal steps stretches
    the epochs, and the markdown table has every cell."""
    config = PruneCurveConfig(checkpoint=str(recorded_run / "last.pt"), dynamics_run=str(recorded_run), full=False,
                              ratios=(0.1,), methods=ISSUE_METHODS, seeds=(0,), train={**TINY, "limit_train_batches": 1},
                              budgets=("epochs", "steps"), evals_per_run=1, score=ScoreSpec(draws=2, chunk_size=2000),
                              out=str(tmp_path / "pc"))
    result = run_prune_curve(config)
    out = tmp_path / "pc"
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 6 * 2
    epochs = {(r["budget"], r["method"]): int(r["epochs"]) for r in runs}
    assert epochs[("steps", "el2n:ccs")] == round(1437 / 145) and epochs[("epochs", "el2n:ccs")] == 1
    for method, path in (("kmix-cv", "scores.csv"), ("el2n", "scores_el2n.csv"),
                         ("forgetting", "scores_forgetting.csv"), ("aum", "scores_aum.csv")):
        meta = json.loads((out / f"{path}.json").read_text())
        assert meta["method"] == method
    assert json.loads((out / "scores_aum.csv.json").read_text())["run"] == str(recorded_run)
    assert len(list((out / "subsets").glob("*.json"))) == 6  # methods x ratios x seeds, not x budgets
    aum = json.loads((out / "subsets" / "aum-ccs_T0.1_s0.json").read_text())
    assert aum["order"] == "low" and aum["sampling"] == "ccs" and aum["n_selected"] == 145
    assert aum["ccs"] == {"beta": 0.3, "beta_source": "default", "bins": 50}
    with open(out / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert {(c["budget"], c["method"]) for c in curve} == {(b, m) for b in ("epochs", "steps") for m in ISSUE_METHODS}
    table = (out / "curve.md").read_text()
    assert "equal epochs" in table and "equal steps" in table
    assert table.count("| `aum:ccs` | aum (low first) | ccs |") == 2
    cell = next(c for c in result["curve"] if (c["budget"], c["method"], c["ratio"]) == ("steps", "cv", 0.1))
    assert f"{cell['err_mean']:.2f} ± {cell['err_std']:.2f}" in table
    with open(out / "table.csv") as f:
        rows = {(r["budget"], r["method"]): r for r in csv.DictReader(f)}
    assert len(rows) == 12 and rows[("steps", "cv")]["epochs"] == str(round(1437 / 145))


def test_markdown_table_cells_and_full_row():
    from kmix.select.prune_curve import markdown_table

    rows = [{"budget": "epochs", "method": m, "ratio": r, "seed": s, "n_train": n, "top1_err": e}
            for m, r, n, s, e in [("random", "0.1", 145, 0, 10.0), ("random", "0.1", 145, 1, 12.0),
                                  ("el2n:ccs", "0.1", 145, 0, 9.0)]]
    rows += [{"budget": "any", "method": "full", "ratio": "1", "seed": s, "n_train": 1437, "top1_err": e}
             for s, e in ((0, 2.0), (1, 3.0))]
    table = markdown_table(aggregate(rows), ("random", "el2n:ccs"), ("epochs",), 10, (0, 1))
    assert "| method | ranked by | sampling | T=0.1 (n=145) | full (n=1437) |" in table
    assert f"| `random` | — | — | 11.00 ± {math.sqrt(2):.2f} |  |" in table
    assert "| `el2n:ccs` | el2n (high first) | ccs | 9.00 ± 0.00 (1 seed) |  |" in table
    assert f"| all data | — | — |  | 2.50 ± {math.sqrt(0.5):.2f} |" in table


def test_config_refuses_what_the_methods_cannot_get(tmp_path):
    with pytest.raises(ValueError, match="budgets must be one or both of epochs, steps"):
        PruneCurveConfig(budgets=("time",)).validate()
    with pytest.raises(ValueError, match="methods must not repeat"):
        PruneCurveConfig(methods=("cv", "cv")).validate()
    ckpt = _checkpoint(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="aum, forgetting read a recorded training run: give --dynamics-run"):
        PruneCurveConfig(checkpoint=ckpt, full=False, methods=("forgetting:ccs", "aum:ccs")).validate()
    with pytest.raises(FileNotFoundError, match="has no dynamics.pt"):
        PruneCurveConfig(dynamics_run=str(tmp_path), methods=("aum",)).validate()
    with pytest.raises(ValueError, match="dyn-unc with a window of 10 epochs needs a recorded run of more than 10"):
        PruneCurveConfig(methods=("dyn-unc:ccs",), train={"epochs": 10}).validate()
    PruneCurveConfig(methods=("dyn-unc:ccs",), train={"epochs": 10}, dyn_unc_window=3).validate()


@pytest.mark.slow
def test_cli_issue_methods_end_to_end_on_digits(tmp_path, capsys):
    """Real runs: the first seed's full-data run is recorded, forgetting/AUM come from it, both budgets."""
    from kmix.cli.main import main

    out = tmp_path / "pc"
    rc = main(["prune-curve", "--data", "digits", "--ratios", "0.5", "--methods", "forgetting:ccs,aum:ccs",
               "--seeds", "0", "--epochs", "3", "--budget", "both", "--model-arg", "width=4", "--draws", "2",
               "--evals-per-run", "1", "--threads", "1", "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| `forgetting:ccs` | forgetting (high first) | ccs |" in printed
    assert (out / "runs" / "full" / "seed0" / "dynamics.pt").is_file()
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 1 + 2 * 2
    steps = {r["method"]: int(r["epochs"]) for r in runs if r["budget"] == "steps"}
    n = json.loads((out / "subsets" / "aum-ccs_T0.5_s0.json").read_text())["n_selected"]
    assert steps == {"forgetting:ccs": round(3 * 1437 / n), "aum:ccs": round(3 * 1437 / n)}
    assert all(0 <= float(r["top1_err"]) <= 100 for r in runs)
    assert (out / "curve.png").stat().st_size > 1000 and (out / "curve.md").is_file()
    metrics = (out / "runs" / "epochs" / "aum-ccs_T0.5_s0" / "metrics.jsonl").read_text().splitlines()
    assert ["top1_err" in line for line in metrics] == [False, False, True]  # --evals-per-run 1: the last epoch
