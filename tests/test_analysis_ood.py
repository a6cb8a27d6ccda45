"""OOD metrics against brute force / hand computation, and `kmix ood` on digits vs a noise ImageFolder."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kmix.analysis.ood import OODConfig, fpr_at_tpr, msp_anomaly_score, ood_metrics, run_ood
from kmix.cli.main import main
from kmix.train.checkpoint import load_model
from analysis_support import digits, train_digits_checkpoint


def brute_auroc(s_in, s_out):
    """P(score_ood > score_in) + 0.5 P(tie), over all pairs."""
    return float(np.mean([(o > i) + 0.5 * (o == i) for o in s_out for i in s_in]))


def brute_average_precision(s_in, s_out):
    """Mean over OOD images of the precision among images scored at least as high (no ties)."""
    scores = np.concatenate([s_in, s_out])
    is_ood = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    return float(np.mean([is_ood[scores >= s].mean() for s in s_out]))


def test_aupr_and_auroc_match_brute_force():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(0, 1, 70), rng.normal(0.8, 1, 30)
    m = ood_metrics(s_in, s_out)
    assert m["auroc"] == pytest.approx(brute_auroc(s_in, s_out), abs=1e-12)
    assert m["aupr"] == pytest.approx(brute_average_precision(s_in, s_out), abs=1e-12)
    assert m["n_in"] == 70 and m["n_ood"] == 30 and m["ood_fraction"] == pytest.approx(0.3)


def test_fpr_at_95_tpr_hand_computed():
    s_out = np.arange(1.0, 21.0)  # 20 OOD images; detecting 19 of them (95%) needs threshold 2
    s_in = np.array([0.5, 1.5, 2.5, 10.5, 25.0])  # 3 of 5 in-distribution images score >= 2
    assert ood_metrics(s_in, s_out)["fpr_at_95_tpr"] == pytest.approx(0.6)
    labels = np.r_[np.zeros(5), np.ones(20)]
    assert fpr_at_tpr(labels, np.r_[s_in, s_out], 1.0) == pytest.approx(0.8)  # threshold 1: 4 of 5


def test_perfect_separation_and_msp():
    m = ood_metrics([-0.9, -0.8], [-0.2, -0.1])
    assert (m["aupr"], m["auroc"], m["fpr_at_95_tpr"]) == (1.0, 1.0, 0.0)
    logits = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    expected = -torch.tensor([0.5, np.exp(3) / (np.exp(3) + np.exp(1))], dtype=torch.float32)
    assert torch.allclose(msp_anomaly_score(logits), expected)
    with pytest.raises(ValueError, match="scores"):
        ood_metrics([], [0.1])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ood")
    rng = np.random.default_rng(0)
    folder = root / "noise" / "static"
    folder.mkdir(parents=True)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return train_digits_checkpoint(root / "m.pt"), root / "noise"


def test_run_ood_with_class_subset(setup, tmp_path):
    ckpt, noise = setup
    classes = tmp_path / "classes.txt"
    classes.write_text("# three digits\n2\n0\n1\n")
    res = run_ood(OODConfig(checkpoint=str(ckpt), ood_data=str(noise), classes=str(classes), out=str(tmp_path / "o"),
                            limit=None, device="cpu", quiet=True))
    x, y = digits(False).tensors
    keep = (y <= 2)
    model, _ = load_model(ckpt)
    with torch.no_grad():
        expected_msp = torch.softmax(model(x[keep])[:, [2, 0, 1]], 1).max(1).values
    with open(tmp_path / "o" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    msp_in = torch.tensor([float(r["msp"]) for r in rows if r["source"] == "in"])
    msp_ood = np.array([float(r["msp"]) for r in rows if r["source"] == "ood"])
    assert res["n_in"] == int(keep.sum()) and res["n_ood"] == 40 and res["num_scored_classes"] == 3
    assert torch.allclose(msp_in, expected_msp, atol=1e-6)
    again = ood_metrics(-msp_in.numpy(), -msp_ood)
    assert again["aupr"] == pytest.approx(res["aupr"]) and again["auroc"] == pytest.approx(res["auroc"])
    assert json.loads((tmp_path / "o" / "ood.json").read_text())["aupr"] == res["aupr"]
    assert (tmp_path / "o" / "ood.png").stat().st_size > 1000


def test_ood_bad_input(setup, tmp_path, capsys):
    ckpt, noise = setup
    bad = tmp_path / "bad.txt"
    bad.write_text("0\nzebra\n")
    assert main(["ood", "--checkpoint", str(ckpt), "--ood-data", str(noise), "--classes", str(bad),
                 "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 2
    assert "zebra" in capsys.readouterr().err
    assert main(["ood", "--checkpoint", str(tmp_path / "x.pt"), "--ood-data", str(noise), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["ood", "--checkpoint", str(ckpt), "--ood-data", str(tmp_path / "nowhere"), "--out", str(tmp_path),
                 "--device", "cpu", "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
