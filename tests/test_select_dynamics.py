"""Training-dynamics scores (forgetting events, AUM, Dyn-Unc) on constructed records with known answers,
and from the CLI on a recorded digits run: kmix train --record-dynamics -> kmix score --run -> kmix subsample."""
from __future__ import annotations

import csv
import json
import math
import statistics

import numpy as np
import pytest
import torch

from kmix.cli.main import main
from kmix.select import ScoreConfig, get_score_method, read_scores, run_score
from kmix.select.dynamics_scores import area_under_margin, dynamic_uncertainty, forgetting_events

NAN = math.nan


def bools(rows):
    return torch.tensor(rows, dtype=torch.bool).T  # rows are per-sample sequences -> (epochs, N)


def test_forgetting_counts_correct_to_wrong_transitions():
    # per sample, its correctness over 6 epochs
    correct = bools([[1, 0, 1, 0, 1, 1],   # forgotten twice
                     [0, 1, 1, 1, 1, 1],   # learned once, never forgotten
                     [1, 1, 1, 1, 1, 0],   # forgotten at the last epoch
                     [0, 0, 0, 0, 0, 0],   # never learned
                     [1, 0, 0, 1, 0, 0]])  # forgotten twice, with wrong runs
    seen = torch.ones_like(correct)
    assert forgetting_events(correct, seen).tolist() == [2.0, 0.0, 1.0, 7.0, 2.0]  # never learned: E + 1 = 7


def test_forgetting_skips_unseen_epochs_and_marks_never_seen_nan():
    correct = bools([[1, 0, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    seen = bools([[1, 0, 1, 1],    # right, (unseen), wrong, right: one event across the gap
                  [1, 0, 0, 1],    # right, -, -, wrong: one event
                  [0, 0, 0, 0],    # never seen: NaN
                  [0, 1, 0, 0]])   # seen once, right: no event
    out = forgetting_events(correct, seen)
    assert out[[0, 1, 3]].tolist() == [1.0, 1.0, 0.0] and math.isnan(out[2])
    # an epoch where the sample was not seen is not a wrong answer: no event from right -> (unseen) -> right
    assert forgetting_events(bools([[1, 0, 1]]), bools([[1, 0, 1]])).tolist() == [0.0]


def test_aum_is_the_mean_margin_over_seen_epochs():
    margin = torch.tensor([[1.0, -2.0, 3.0, NAN], [0.5, 0.5, 0.5, 0.5], [NAN] * 4]).T
    out = area_under_margin(margin)
    assert out[0].item() == pytest.approx(2 / 3) and out[1].item() == 0.5 and math.isnan(out[2])


def test_dyn_unc_of_a_known_probability_sequence():
    # J = 3 over 5 presentations: windows k = 0, 1 (the one ending at the last presentation is unused)
    expected = (statistics.stdev([0.1, 0.2, 0.6]) + statistics.stdev([0.2, 0.6, 0.6])) / 2  # ddof 1
    probs = [[0.1, 0.2, 0.6, 0.6, 0.0, NAN],   # not seen in the last epoch
             [0.1, NAN, 0.2, 0.6, 0.6, 0.0],   # not seen in epoch 2: windows slide over its presentations
             [0.3] * 6,                        # steady: 0
             [0.5, 0.6, 0.7, NAN, NAN, NAN]]   # seen J times: no window before the last one, NaN
    out = dynamic_uncertainty(torch.tensor(probs, dtype=torch.float64).T, window=3)
    assert out[0].item() == pytest.approx(expected, rel=1e-12) and out[1].item() == pytest.approx(expected, rel=1e-12)
    assert out[2].item() == 0.0 and math.isnan(out[3])
    assert dynamic_uncertainty(torch.tensor([[0.2, 0.9, 0.4]]).T, window=2).item() == pytest.approx(
        statistics.stdev([0.2, 0.9]))  # E = J + 1: one window
    with pytest.raises(ValueError, match="needs at least 4 recorded epochs"):
        dynamic_uncertainty(torch.zeros(3, 2), window=3)
    with pytest.raises(ValueError, match="window must be an int >= 2"):
        dynamic_uncertainty(torch.zeros(3, 2), window=1)


def test_registry_entries_read_a_run_folder(tmp_path):
    for name, column, order in (("forgetting", "forgetting", "high"), ("aum", "aum", "low"),
                                ("dyn-unc", "dyn-unc", "high")):
        m = get_score_method(name)
        assert m.needs == "run" and m.columns == (column,) and m.orders[column] == order
    with pytest.raises(ValueError, match="needs --run"):
        run_score(ScoreConfig(method="aum", out=str(tmp_path / "a.csv")))
    with pytest.raises(FileNotFoundError, match="has no dynamics.pt.*--record-dynamics"):
        run_score(ScoreConfig(method="aum", run_dir=str(tmp_path), out=str(tmp_path / "a.csv")))
    with pytest.raises(ValueError, match="dyn_unc_window"):
        run_score(ScoreConfig(method="dyn-unc", run_dir=str(tmp_path), dyn_unc_window=1, out=str(tmp_path / "a.csv")))


@pytest.mark.slow
def test_cli_scores_a_recorded_digits_run_and_subsamples_by_each(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--model-arg", "width=4", "--epochs", "6", "--batch-size", "64",
                 "--mix", "dcutmix", "--k", "3", "--alpha", "1", "--threads", "1", "--record-dynamics", "--quiet",
                 "--no-tensorboard", "--no-plot", "--out", str(run)]) == 0
    rec = torch.load(run / "dynamics.pt", weights_only=False)
    seen = ~torch.isnan(rec["loss"])
    assert rec["loss"].shape == (6, 1437) and seen.sum(1).tolist() == [22 * 64] * 6  # 29 dropped per epoch
    expected = {
        "forgetting": forgetting_events(rec["correct"], seen),
        "aum": area_under_margin(rec["margin"]),
        "dyn-unc": dynamic_uncertainty(torch.exp(-rec["loss"].double()), window=2),
    }
    capsys.readouterr()
    subsampled = []
    for method, values in expected.items():
        out = tmp_path / f"{method}.csv"
        extra = ["--window", "2"] if method == "dyn-unc" else []
        assert main(["score", "--method", method, "--run", str(run), "--out", str(out), *extra]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["epochs"] == 6 and summary["n"] == 1437
        table = read_scores(out)
        assert table.score_columns == (method,) and np.array_equal(table.label, rec["labels"].numpy())
        np.testing.assert_allclose(table.column(method), values.numpy(), rtol=0, atol=0, equal_nan=True)
        if np.isfinite(values.numpy()).all():  # NaN (an image seen too rarely) is possible, very unlikely here
            sub = tmp_path / f"{method}_ccs.json"
            assert main(["subsample", "--scores", str(out), "--by", method, "--ratio", "0.2", "--sampling", "ccs",
                         "--out", str(sub)]) == 0
            capsys.readouterr()
            subsampled.append(method)
            chosen = json.loads(sub.read_text())
            assert chosen["n_selected"] == sum(chosen["per_class"].values()) and chosen["order"] == (
                "low" if method == "aum" else "high")
    assert {"forgetting", "aum"} <= set(subsampled)  # NaN there would need an image unseen for 6 epochs
    with open(tmp_path / "forgetting.csv") as f:
        header = next(csv.reader(f))
    assert header == ["index", "label", "forgetting", "never_learned"]
    assert main(["score", "--method", "aum", "--run", str(run), "--window", "3", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--window applies to --method dyn-unc only" in capsys.readouterr().err
    assert main(["score", "--method", "el2n", "--run", str(run), "--checkpoint", str(run / "last.pt"),
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "--run is for methods that read recorded training dynamics" in capsys.readouterr().err
