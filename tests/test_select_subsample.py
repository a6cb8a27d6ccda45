"""Subsampling: exact per-class counts, top/interval ranks, sort directions, k-center, MC-dropout, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from kmix.cli.main import main
from kmix.select.baselines import k_center_greedy, mc_dropout_entropy, penultimate_features
from kmix.select.subsample import (SubsampleConfig, class_counts, interval_ranks, run_subsample, select_by_score,
                                   select_random)


def write_scores_csv(path, labels, cv, mean=None):
    mean = np.ones(len(labels)) if mean is None else mean
    lines = ["index,label,mean,std,cv"] + [f"{i},{y},{m},{c * m},{c}" for i, (y, c, m) in
                                           enumerate(zip(labels, cv, mean))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_class_counts_round_half_up_never_zero():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 1 + [3] * 25)
    assert class_counts(labels, 0.25) == {0: 3, 1: 1, 2: 1, 3: 6}  # 2.5 -> 3, 1.25 -> 1, 0.25 -> 1, 6.25 -> 6
    assert class_counts(labels, 0.5) == {0: 5, 1: 3, 2: 1, 3: 13}  # 2.5 -> 3, 12.5 -> 13 (not banker's 12)
    assert class_counts(labels, 1.0) == {0: 10, 1: 5, 2: 1, 3: 25}


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.37, 0.5, 1.0])
def test_exact_per_class_counts(ratio):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 300)
    scores = rng.random(300)
    picked = np.array(select_by_score(labels, scores, ratio))
    assert len(np.unique(picked)) == len(picked)
    for c in range(7):
        n_c = int((labels == c).sum())
        assert int((labels[picked] == c).sum()) == max(1, math.floor(ratio * n_c + 0.5))
    rnd = np.array(select_random(labels, ratio, seed=3))
    for c in range(7):
        assert int((labels[rnd] == c).sum()) == int((labels[picked] == c).sum())
    assert select_random(labels, ratio, seed=3) == rnd.tolist()


def test_top_takes_highest_or_lowest_ties_by_index():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 0.9, 3.0, 1.0, 2.0, 0.0])
    assert select_by_score(labels, scores, 0.5, "high") == [1, 3, 4, 6]
    assert select_by_score(labels, scores, 0.25, "high") == [1, 4]  # tie 0.9 at 1 and 3: index 1 first
    assert select_by_score(labels, scores, 0.5, "low") == [0, 2, 5, 7]


def test_interval_picks_evenly_spaced_ranks():
    assert interval_ranks(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert interval_ranks(10, 10).tolist() == list(range(10))
    assert interval_ranks(9, 3).tolist() == [1, 4, 7]
    assert interval_ranks(7, 1).tolist() == [3]
    labels = np.zeros(20, dtype=np.int64)
    scores = np.arange(20, dtype=float)  # rank r under "high" is index 19 - r
    picked = select_by_score(labels, scores, 0.2, "high", "interval")  # n=4: ranks 2, 7, 12, 17
    assert picked == sorted(19 - r for r in [2, 7, 12, 17])


def test_k_center_picks_farthest_point_each_step():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 0.0], [0.0, -6.0], [5.0, 5.0], [0.2, 0.1]])
    order = k_center_greedy(pts, 5)
    mean = pts.mean(0)
    assert order[0] == int(((pts - mean) ** 2).sum(1).argmin())
    for step in range(1, 5):  # brute force: the next pick maximises the distance to the chosen set
        chosen = pts[order[:step]]
        dist = torch.cdist(pts, chosen).min(1).values
        dist[order[:step]] = -1
        assert order[step] == int(dist.argmax())
    assert len(set(order)) == 5
    with pytest.raises(ValueError, match="n_select"):
        k_center_greedy(pts, 8)


class ScaleNet(nn.Module):
    """Logits = 5 * (class prototype . x): a zero image is uniform (max entropy), a prototype confident."""

    def __init__(self, dropout: bool):
        super().__init__()
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
        self.fc = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(5 * torch.eye(4))

    def forward(self, x):
        return self.fc(self.drop(x.flatten(1)))


@pytest.mark.parametrize("dropout", [True, False])
def test_mc_dropout_high_entropy_is_high_order(dropout):
    x = torch.zeros(4, 1, 2, 2)
    x[1].view(-1)[0] = 1.0  # confident class 0
    x[3].view(-1)[0] = 0.3  # less confident
    ds = TensorDataset(x, torch.zeros(4, dtype=torch.long))
    model = ScaleNet(dropout).eval()
    ent = mc_dropout_entropy(model, ds, passes=20, seed=0)
    assert ent[0] == pytest.approx(math.log(4), abs=1e-6) and ent[2] == pytest.approx(math.log(4), abs=1e-6)
    assert ent[1] < ent[0] - 0.05 and ent[3] < ent[0] - 0.05
    assert not model.training and all(not m.training for m in model.modules())
    torch.testing.assert_close(ent, mc_dropout_entropy(model, ds, passes=20, seed=0))
    labels = np.zeros(4, dtype=np.int64)
    scores = ent.double().numpy()
    scores[2] -= 1e-3  # make the two uniform images distinguishable
    assert select_by_score(labels, scores, 0.25, "high") == [0]  # most uncertain first
    low = select_by_score(labels, scores, 0.25, "low")  # most confident first
    assert low == [int(ent.argmin())] and low[0] in (1, 3)


def test_penultimate_features_hook_the_classifier_input():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 1, 2, 2)
    feats = penultimate_features(model, TensorDataset(x, torch.zeros(5, dtype=torch.long)), batch_size=2)
    torch.testing.assert_close(feats, torch.relu(model[1](x.flatten(1))).detach())


def test_run_subsample_writes_record(tmp_path):
    labels = np.array([0] * 6 + [1] * 4)
    cv = np.array([0.1, 0.6, 0.3, 0.5, 0.2, 0.4, 0.9, 0.8, 0.7, 0.05])
    scores = write_scores_csv(tmp_path / "s.csv", labels, cv, mean=np.linspace(1, 2, 10))
    out = tmp_path / "sub.json"
    assert main(["subsample", "--scores", str(scores), "--ratio", "0.5", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["indices"] == [1, 3, 5, 6, 7]
    assert (record["method"], record["order"], record["sampling"], record["ratio"]) == ("cv", "high", "top", 0.5)
    assert record["per_class"] == {"0": 3, "1": 2} and record["scores"].endswith("s.csv")
    easy = run_subsample(SubsampleConfig(ratio=0.5, by="mean", order="low", scores=str(scores),
                                         out=str(tmp_path / "e.json")))
    assert easy["indices"] == [0, 1, 2, 6, 7]
    from kmix.data.subset import load_indices

    assert load_indices(out, 10) == [1, 3, 5, 6, 7]


@pytest.mark.slow
def test_model_baselines_on_digits(tmp_path):
    """MC-dropout and k-center from a checkpoint pick a valid, reproducible subset with exact per-class counts."""
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=1, width=4)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=4)})
    from kmix.data.registry import build_dataset

    dataset, _ = build_dataset("digits", train=True, augment=False)
    labels = np.array([int(y) for _, y in dataset])
    picked = {}
    for by in ("mc-dropout", "k-center"):
        config = SubsampleConfig(ratio=0.1, by=by, checkpoint=str(ckpt), data="digits", mc_passes=2,
                                 out=str(tmp_path / f"{by}.json"))
        rec = run_subsample(config)
        indices = np.array(rec["indices"])
        assert rec["n_total"] == 1437 and len(np.unique(indices)) == len(indices) and indices.max() < 1437
        counts = class_counts(labels, 0.1)  # the same exact per-class counts as the score methods
        assert rec["per_class"] == {str(c): n for c, n in counts.items()}
        assert {c: int((labels[indices] == c).sum()) for c in counts} == counts  # the labels of the picks
        assert run_subsample(config)["indices"] == rec["indices"]  # same seed, same subset
        picked[by] = set(rec["indices"])
    assert picked["mc-dropout"] != picked["k-center"]


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    labels = np.array([0, 0, 1, 1])
    scores = write_scores_csv(tmp_path / "s.csv", labels, np.array([0.1, 0.2, 0.3, 0.4]))
    for ratio in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio must be in"):
            run_subsample(SubsampleConfig(ratio=ratio, scores=str(scores)))
    with pytest.raises(ValueError, match="unknown method --by 'entropy'"):
        run_subsample(SubsampleConfig(ratio=0.5, by="entropy", scores=str(scores)))
    with pytest.raises(ValueError, match="needs --checkpoint and --data"):
        run_subsample(SubsampleConfig(ratio=0.5, by="mc-dropout", scores=str(scores)))
    with pytest.raises(ValueError, match="needs --scores"):
        run_subsample(SubsampleConfig(ratio=0.5, by="cv"))
    with pytest.raises(ValueError, match="dataset size mismatch.*4 rows.*1437"):
        run_subsample(SubsampleConfig(ratio=0.5, scores=str(scores), data="digits", out=str(tmp_path / "o.json")))
    (tmp_path / "bad.csv").write_text("index,label,mean,cv\n0,0,1,0.1\n")
    with pytest.raises(ValueError, match="lacks column.*std"):
        run_subsample(SubsampleConfig(ratio=0.5, scores=str(tmp_path / "bad.csv")))
    (tmp_path / "range.csv").write_text("index,label,mean,std,cv\n0,0,1,0.1,0.1\n7,0,1,0.1,0.1\n")
    with pytest.raises(ValueError, match=r"6 index\(es\) missing \(1, 2, 3, 4, 5 \.\.\.\): 2 rows hold indices up to 7"):
        run_subsample(SubsampleConfig(ratio=0.5, scores=str(tmp_path / "range.csv")))
    assert main(["subsample", "--scores", str(tmp_path / "none.csv"), "--ratio", "0.5"]) == 2
    assert "scores file not found" in capsys.readouterr().err
    assert main(["subsample", "--scores", str(scores), "--ratio", "2", "--out", str(tmp_path / "x.json")]) == 2
    assert "ratio must be in (0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
