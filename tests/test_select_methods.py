"""Checkpoint scores (EL2N, GraNd, entropy, margin) on constructed cases, the method registry, the one
scores-file format, and every method from the CLI on digits."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from kmix.cli.main import main
from kmix.select import (SCORE_METHODS, ScoreConfig, ScoreMethod, el2n_from_logits, entropy_from_logits,
                         get_score_method, grand_all, grand_last_from_logits, margin_from_logits, predict,
                         read_scores, register_score_method, write_score_table)


def logits_of(probs) -> torch.Tensor:
    """Logits whose softmax is exactly `probs` (log p; softmax is shift-invariant)."""
    return torch.tensor(probs, dtype=torch.float64).log()


def test_el2n_of_known_probabilities():
    logits = logits_of([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    labels = torch.tensor([0, 2, 2])
    expected = [math.sqrt(0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2),  # right and fairly sure
                math.sqrt(0.7 ** 2 + 0.2 ** 2 + 0.9 ** 2),  # wrong
                math.sqrt(0.25 ** 2 + 0.25 ** 2 + 0.5 ** 2)]
    np.testing.assert_allclose(el2n_from_logits(logits, labels).numpy(), expected, rtol=1e-12)
    sure = torch.tensor([[60.0, 0.0, 0.0]])
    assert el2n_from_logits(sure, torch.tensor([0])).item() == pytest.approx(0.0, abs=1e-12)
    assert el2n_from_logits(sure, torch.tensor([1])).item() == pytest.approx(math.sqrt(2), abs=1e-12)


def test_entropy_and_margin_by_hand():
    logits = logits_of([[0.5, 0.25, 0.25, 1e-300], [0.25, 0.25, 0.25, 0.25], [0.4, 0.4, 0.1, 0.1],
                        [0.5, 0.3, 0.15, 0.05]])
    ent = entropy_from_logits(logits).numpy()
    np.testing.assert_allclose(ent[:3], [1.5 * math.log(2), math.log(4), -0.8 * math.log(0.4) - 0.2 * math.log(0.1)],
                               rtol=1e-10)
    np.testing.assert_allclose(margin_from_logits(logits).numpy(), [0.25, 0.0, 0.0, 0.2], atol=1e-12)
    assert entropy_from_logits(torch.tensor([[80.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-30)
    with pytest.raises(ValueError, match="at least 2 classes"):
        margin_from_logits(torch.zeros(3, 1))


def mlp(bias=True, bn=False, classes=3, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(6, 5), *([nn.BatchNorm1d(5)] if bn else []), nn.Tanh(),
              nn.Linear(5, classes, bias=bias)]
    net = nn.Sequential(*layers)
    if bn:  # running statistics away from (0, 1), so eval mode matters
        net[2].running_mean.uniform_(-1, 1)
        net[2].running_var.uniform_(0.5, 2)
    return net.eval()


def tiny_set(n=7, classes=3):
    g = torch.Generator().manual_seed(3)
    return TensorDataset(torch.randn(n, 1, 2, 3, generator=g), torch.arange(n) % classes)


def per_sample_grad_norm(model, ds, params) -> torch.Tensor:
    """Reference: one backward per sample, norm over `params`."""
    out = []
    for x, y in ds:
        model.zero_grad()
        F.cross_entropy(model(x[None]), torch.tensor([int(y)])).backward()
        out.append(torch.sqrt(sum(p.grad.double().pow(2).sum() for p in params)))
    return torch.stack(out)


@pytest.mark.parametrize("bias", [True, False])
def test_grand_last_layer_closed_form_matches_autograd(bias):
    model, ds = mlp(bias=bias), tiny_set()
    head = model[-1]
    expected = per_sample_grad_norm(model, ds, [p for p in head.parameters()])
    logits, feats, has_bias = predict(model, ds, batch_size=3, head_inputs=True)
    assert has_bias is bias and feats.shape == (7, 5)
    got = grand_last_from_logits(logits, ds.tensors[1], feats, has_bias)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_grand_all_matches_autograd_with_batchnorm_in_eval():
    model, ds = mlp(bn=True), tiny_set()
    expected = per_sample_grad_norm(model, ds, list(model.parameters()))
    got = grand_all(model, ds, batch_size=3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert not model.training


def test_last_layer_form_refuses_logits_that_are_not_a_linear_output():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return 2 * self.fc(x.flatten(1))

    with pytest.raises(ValueError, match="grand-params all"):
        predict(Scaled(), tiny_set(), head_inputs=True)


def test_registry_lists_builtins_and_refuses_clashes():
    assert list(SCORE_METHODS) == ["kmix-cv", "el2n", "grand", "entropy", "margin", "forgetting", "aum", "dyn-unc"]
    assert get_score_method("margin").orders["margin"] == "low"
    assert get_score_method("kmix-cv").columns == ("mean", "std", "cv")
    with pytest.raises(ValueError, match="unknown score --method 'forgotten'; choose from kmix-cv, el2n"):
        get_score_method("forgotten")
    run = get_score_method("el2n").run
    with pytest.raises(ValueError, match="already registered"):
        register_score_method(ScoreMethod("el2n", "checkpoint", ("el2n_x",), {"el2n_x": "high"}, run, "", ""))
    with pytest.raises(ValueError, match=r"\['cv'\] already belong to 'kmix-cv'"):
        register_score_method(ScoreMethod("other", "checkpoint", ("cv",), {"cv": "high"}, run, "", ""))
    with pytest.raises(ValueError, match="needs must be one of checkpoint, run"):
        ScoreMethod("aum", "epochs", ("aum",), {"aum": "low"}, run, "", "")
    with pytest.raises(ValueError, match="orders must give"):
        ScoreMethod("aum", "run", ("aum",), {"aum": "up"}, run, "", "")
    assert [m for m in SCORE_METHODS if SCORE_METHODS[m].needs == "run"] == ["forgetting", "aum", "dyn-unc"]


def test_score_file_format_and_reader_checks(tmp_path):
    labels = torch.tensor([1, 0, 1])
    path = tmp_path / "m.csv"
    columns = {"margin": torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64), "margin_0": np.array([0.4, 0.2, 1.0])}
    write_score_table(path, labels, columns, {"method": "margin", "score_columns": ["margin"],
                                              "orders": {"margin": "low"}})
    with open(path) as f:
        assert next(csv.reader(f)) == ["index", "label", "margin", "margin_0"]
    table = read_scores(path)
    assert table.score_columns == ("margin",) and table.meta["method"] == "margin"
    np.testing.assert_array_equal(table.column("margin"), [0.5, 0.1, 0.9])
    assert table.default_order("margin") == "low" and table.default_order("margin_0") == "low"
    (tmp_path / "m.csv.json").write_text(json.dumps({"score_columns": ["el2n"]}))
    with pytest.raises(ValueError, match="lacks column.*el2n"):
        read_scores(path)
    (tmp_path / "keys.csv").write_text("index,label\n0,1\n")
    with pytest.raises(ValueError, match="no score column"):
        read_scores(tmp_path / "keys.csv")
    (tmp_path / "g.csv").write_text("index,label,grand\n1,0,2.5\n0,1,0.5\n")  # no sidecar: inferred from header
    table = read_scores(tmp_path / "g.csv")
    assert table.score_columns == ("grand",) and table.default_order("grand") == "high"
    np.testing.assert_array_equal(table.column("grand"), [0.5, 2.5])


def test_config_errors_name_the_bad_argument(tmp_path):
    with pytest.raises(ValueError, match="unknown score --method 'nope'"):
        ScoreConfig(checkpoint="x.pt", method="nope").validate()
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pt"):
        ScoreConfig(checkpoint=["missing.pt"], method="el2n").validate()
    with pytest.raises(ValueError, match="grand_params must be one of last, all"):
        ScoreConfig(checkpoint="x.pt", method="grand", grand_params="first").validate()


def _digits_checkpoints(tmp_path, seeds=(0, 1)):
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    paths = []
    for s in seeds:
        torch.manual_seed(s)
        net = build_model("small_cnn", num_classes=10, in_chans=1, width=4)
        path = tmp_path / f"m{s}.pt"
        save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=4)})
        paths.append(str(path))
    return paths


def test_every_method_runs_from_the_cli_on_digits(tmp_path, capsys):
    from kmix.data.digits import DigitsDataset
    from kmix.train.checkpoint import load_model

    ckpts = _digits_checkpoints(tmp_path)
    data = DigitsDataset(train=True)
    labels = torch.tensor(data.targets)
    logits = [predict(load_model(c)[0], data)[0] for c in ckpts]
    expected = {"el2n": [el2n_from_logits(z, labels) for z in logits],
                "entropy": [entropy_from_logits(z) for z in logits],
                "margin": [margin_from_logits(z) for z in logits]}
    for method in ("el2n", "grand", "entropy", "margin"):
        out = tmp_path / f"{method}.csv"
        assert main(["score", "--method", method, "--checkpoint", *ckpts, "--out", str(out), "--quiet"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["complete"] and summary["checkpoints"] == 2 and summary["n"] == 1437
        table = read_scores(out)
        assert list(table.columns) == [method, f"{method}_0", f"{method}_1"]
        assert table.meta["method"] == method and table.meta["checkpoints"] == ckpts
        np.testing.assert_array_equal(table.label, data.targets)
        per = np.stack([table.column(f"{method}_0"), table.column(f"{method}_1")], 1)
        np.testing.assert_allclose(table.column(method), per.mean(1), rtol=1e-12)
        if method in expected:
            for j, ref in enumerate(expected[method]):
                np.testing.assert_allclose(per[:, j], ref.numpy(), rtol=1e-9)
        # the file feeds subsample by its own column, sorted its own way by default
        sub = tmp_path / f"{method}.json"
        assert main(["subsample", "--scores", str(out), "--by", method, "--ratio", "0.1", "--out", str(sub)]) == 0
        rec = json.loads(sub.read_text())
        assert rec["order"] == ("low" if method == "margin" else "high") and rec["n_selected"] == 145
    capsys.readouterr()
    grand = read_scores(tmp_path / "grand.csv")
    assert grand.meta["grand_params"] == "last" and np.all(grand.column("grand") > 0)
    out = tmp_path / "grand_all.csv"  # full gradients: at least the last layer's share of the norm
    assert main(["score", "--method", "grand", "--grand-params", "all", "--checkpoint", ckpts[0], "--out", str(out),
                 "--quiet"]) == 0
    assert np.all(read_scores(out).column("grand") >= grand.column("grand_0") * (1 - 1e-6))
    assert main(["score", "--method", "el2n", "--checkpoint", ckpts[0], "--draws", "3", "--out", str(out)]) == 2
    assert "--draws applies to --method kmix-cv only, not el2n" in capsys.readouterr().err
    assert main(["score", "--checkpoint", *ckpts, "--out", str(out)]) == 2
    assert "--method kmix-cv takes at most 1 --checkpoint, got 2" in capsys.readouterr().err
    assert main(["score", "--method", "margin", "--grand-params", "all", "--checkpoint", ckpts[0]]) == 2
    assert "--grand-params applies to --method grand only" in capsys.readouterr().err


def test_kmix_cv_sidecar_declares_its_columns(tmp_path):
    from kmix.select import summarize_losses, write_scores

    losses = torch.rand(4, 3)
    write_scores(tmp_path / "s.csv", torch.tensor([0, 1, 0, 1]), losses, summarize_losses(losses), {"draws": 3})
    table = read_scores(tmp_path / "s.csv")
    assert table.meta["method"] == "kmix-cv" and table.meta["draws"] == 3
    assert table.score_columns == ("mean", "std", "cv")
    assert [table.default_order(c) for c in ("mean", "std", "cv", "loss_2")] == ["high"] * 4


def test_a_run_method_plugs_in_without_touching_score_or_subsample(tmp_path):
    """The shape of the coming training-dynamics scores: a method that needs a run folder, checked by the
    config, writing the common format; subsample sorts it by the order its sidecar declares."""
    from kmix.select import SubsampleConfig, run_subsample

    def run_toy(config, method):
        counts = json.loads((tmp_path / "run" / "events.json").read_text())
        write_score_table(config.out, np.array([0, 0, 1, 1, 1]), {"toy_forgetting": np.array(counts, float)},
                          {"method": method.name, "score_columns": list(method.columns), "orders": dict(method.orders)})
        return {"out": config.out, "complete": True, "rank": 0}

    toy = ScoreMethod("toy-forgetting", "run", ("toy_forgetting",), {"toy_forgetting": "high"}, run_toy,
                      "events per sample", "test")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.json").write_text("[2, 0, 1, 5, 3]")
    out = str(tmp_path / "toy.csv")
    with pytest.raises(ValueError, match="--method toy-forgetting needs --run"):
        ScoreConfig(method="toy-forgetting", out=out).check(toy)
    with pytest.raises(ValueError, match="reads --run, not --checkpoint"):
        ScoreConfig(checkpoint="m.pt", run_dir=str(tmp_path / "run"), out=out).check(toy)
    not_for_el2n = "--run is for methods that read recorded training dynamics, not --method el2n"
    with pytest.raises(ValueError, match=not_for_el2n):
        ScoreConfig(checkpoint="m.pt", run_dir=str(tmp_path / "run"), method="el2n").validate()
    config = ScoreConfig(method="toy-forgetting", run_dir=str(tmp_path / "run"), out=out)
    config.check(toy)
    toy.run(config, toy)
    table = read_scores(out)
    assert table.score_columns == ("toy_forgetting",) and table.default_order("toy_forgetting") == "high"
    rec = run_subsample(SubsampleConfig(ratio=0.5, by="toy_forgetting", scores=out, out=str(tmp_path / "s.json")))
    assert rec["indices"] == [0, 3, 4]  # class 0: 2 events of {2, 0} (n=1); class 1: 5 and 3 of {1, 5, 3} (n=2)
    assert "toy-forgetting" not in SCORE_METHODS
