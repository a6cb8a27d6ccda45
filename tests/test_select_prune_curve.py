"""prune-curve: runs per (method, ratio, seed), resume skips finished runs, mean/std over seeds, plot; errors."""
from __future__ import annotations

import csv
import json
import math

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


@pytest.mark.slow
def test_resume_skips_finished_runs(tmp_path):
    calls = []

    def fake_train(config, run_dir, seed, subset, epochs, record=False):
        calls.append((run_dir.name, seed))
        assert epochs == 10
        n = len(json.loads(open(subset).read())["indices"]) if subset else 1437
        return {"top1_err": 100.0 * (1 - n / 1437) + seed, "best_top1_err": 0.0}

    ckpt = _checkpoint(tmp_path / "m.pt")
    config = PruneCurveConfig(checkpoint=ckpt, ratios=(0.1, 0.5), methods=("cv", "random"), seeds=(0, 1), epochs=10,
                              score=ScoreSpec(draws=2, chunk_size=2000), out=str(tmp_path / "pc"))
    result = run_prune_curve(config, train=fake_train)
    assert len(calls) == 2 + 2 * 2 * 2
    with open(tmp_path / "pc" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["ratio"], r["seed"]) for r in rows} == (
        {("full", "1", "0"), ("full", "1", "1")} | {(m, r, s) for m in ("cv", "random") for r in ("0.1", "0.5")
                                                     for s in ("0", "1")})
    cv01 = next(c for c in result["curve"] if c["method"] == "cv" and c["ratio"] == 0.1)
    assert cv01["n_train"] == 145 and cv01["err_mean"] == pytest.approx(100 * (1 - 145 / 1437) + 0.5)
    assert cv01["budget"] == "epochs"
    assert cv01["err_std"] == pytest.approx(np.std([0, 1], ddof=1))
    assert (tmp_path / "pc" / "curve.png").stat().st_size > 1000
    calls.clear()
    run_prune_curve(config, train=fake_train)
    assert calls == []  # everything finished: nothing retrained
    run_prune_curve(PruneCurveConfig(**{**config.__dict__, "seeds": (0, 1, 2)}), train=fake_train)
    assert sorted(calls) == sorted([("seed2", 2)] + [(f"{m}_T{r}_s2", 2) for m in ("cv", "random")
                                                     for r in ("0.1", "0.5")])
    with open(tmp_path / "pc" / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert {c["n_seeds"] for c in curve} == {"3"}
    with pytest.raises(ValueError, match="other settings.*epochs: 10 -> 12"):
        run_prune_curve(PruneCurveConfig(**{**config.__dict__, "epochs": 12}), train=fake_train)


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
    assert (out / "runs" / "epochs" / "cv_T0.1_s0" / "last.pt").is_file() and (out / "curve.png").is_file()


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
    """random, kmix-cv top/CCS, EL2N/forgetting/AUM CCS at two ratios, two seeds, both budgets: each score method
    runs once (the dynamics ones on the recorded first full-data run), subsets are shared by the budgets, equal
    steps stretches the epochs, and the markdown table has every cell."""
    calls = []

    def fake_train(config, run_dir, seed, subset, epochs, record=False):
        calls.append((run_dir.parent.name, run_dir.name, seed, epochs, record))
        if record:  # the real run would write its records: stand in with the recorded one
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "dynamics.pt").write_bytes((recorded_run / "dynamics.pt").read_bytes())
        n = len(json.loads(open(subset).read())["indices"]) if subset else 1437
        return {"top1_err": 100.0 * (1 - n / 1437) + seed + (epochs > 2), "best_top1_err": 0.0}

    config = PruneCurveConfig(checkpoint=str(recorded_run / "last.pt"), ratios=(0.1, 0.5), methods=ISSUE_METHODS,
                              seeds=(0, 1), epochs=2, budgets=("epochs", "steps"),
                              score=ScoreSpec(draws=2, chunk_size=2000), out=str(tmp_path / "pc"))
    result = run_prune_curve(config, train=fake_train)
    out = tmp_path / "pc"
    assert [c for c in calls if c[0] == "full"] == [("full", "seed0", 0, 2, True), ("full", "seed1", 1, 2, False)]
    assert len(calls) == 2 * (1 + 2 * 6 * 2)
    steps = {(c[1], c[3]) for c in calls if c[0] == "steps"}
    assert ("el2n-ccs_T0.1_s0", round(2 * 1437 / 145)) in steps and ("random_T0.5_s1", 4) in steps
    assert all(c[3] == 2 for c in calls if c[0] == "epochs")
    for method, path in (("kmix-cv", "scores.csv"), ("el2n", "scores_el2n.csv"),
                         ("forgetting", "scores_forgetting.csv"), ("aum", "scores_aum.csv")):
        meta = json.loads((out / f"{path}.json").read_text())
        assert meta["method"] == method
    assert json.loads((out / "scores_aum.csv.json").read_text())["run"] == str(out / "runs" / "full" / "seed0")
    assert len(list((out / "subsets").glob("*.json"))) == 6 * 2 * 2  # methods x ratios x seeds, not x budgets
    aum = json.loads((out / "subsets" / "aum-ccs_T0.1_s0.json").read_text())
    assert aum["order"] == "low" and aum["sampling"] == "ccs" and aum["n_selected"] == 145
    assert aum["ccs"] == {"beta": 0.3, "beta_source": "default", "bins": 50}
    with open(out / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert {(c["budget"], c["method"]) for c in curve} == (
        {("any", "full")} | {(b, m) for b in ("epochs", "steps") for m in ISSUE_METHODS})
    table = (out / "curve.md").read_text()
    assert "equal epochs" in table and "equal steps" in table
    assert table.count("| `aum:ccs` | aum (low first) | ccs |") == 2
    cell = next(c for c in result["curve"] if (c["budget"], c["method"], c["ratio"]) == ("steps", "cv", 0.1))
    assert f"{cell['err_mean']:.2f} ± {cell['err_std']:.2f}" in table
    calls.clear()
    run_prune_curve(config, train=fake_train)
    assert calls == []


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
        PruneCurveConfig(methods=("dyn-unc:ccs",), epochs=10).validate()
    PruneCurveConfig(methods=("dyn-unc:ccs",), epochs=10, dyn_unc_window=3).validate()


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
