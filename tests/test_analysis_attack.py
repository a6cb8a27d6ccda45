"""FGSM/PGD laws (eps-ball, [0, 1], eps=0 identity, PGD-1 == FGSM) and the `kmix attack` table."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from kmix.analysis.attacks import fgsm, pgd
from kmix.analysis.robustness import AttackConfig, run_attack
from kmix.cli.main import main
from kmix.runs import Stream, generator_for
from kmix.train.checkpoint import load_model
from analysis_support import digits, train_digits_checkpoint


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack")
    return {"a": train_digits_checkpoint(root / "a.pt", seed=0),
            "b": train_digits_checkpoint(root / "b.pt", seed=1),
            "wide": train_digits_checkpoint(root / "wide.pt", seed=2, width=12)}


@pytest.fixture(scope="module")
def batch():
    x, y = digits(False).tensors
    return x[:64], y[:64]


def test_fgsm_eps_zero_changes_nothing(ckpts, batch):
    model, _ = load_model(ckpts["a"])
    x, y = batch
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert torch.equal(pgd(model, x, y, 0.0, steps=3), x)


def test_fgsm_moves_every_free_pixel_by_exactly_eps(ckpts, batch):
    model, _ = load_model(ckpts["a"])
    x, y = batch
    eps = 4 / 255
    adv = fgsm(model, x, y, eps)
    delta = adv - x
    assert adv.min() >= 0 and adv.max() <= 1
    free = (x > eps) & (x < 1 - eps) & (delta != 0)  # not clamped, non-zero gradient
    assert free.float().mean() > 0.3
    assert torch.allclose(delta[free].abs(), torch.full_like(delta[free], eps), atol=1e-6)
    assert (delta.abs() <= eps + 1e-7).all()


def test_pgd_stays_in_eps_ball_and_unit_range_and_hurts(ckpts, batch):
    model, _ = load_model(ckpts["a"])
    x, y = batch
    eps = 8 / 255
    adv = pgd(model, x, y, eps, steps=5, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        clean, attacked = F.cross_entropy(model(x), y), F.cross_entropy(model(adv), y)
    assert attacked > clean + 0.1
    assert all(p.grad is None for p in model.parameters())  # gradients w.r.t. the input only


def test_one_step_pgd_without_random_start_is_fgsm(ckpts, batch):
    model, _ = load_model(ckpts["a"])
    x, y = batch
    eps = 6 / 255
    assert torch.allclose(pgd(model, x, y, eps, steps=1, step_size=eps, random_start=False), fgsm(model, x, y, eps))


def test_bad_attack_input():
    model = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, torch.rand(2, 4), torch.zeros(2, dtype=torch.long), -0.1)
    with pytest.raises(TypeError, match="float"):
        pgd(model, torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd(model, torch.rand(2, 4), torch.zeros(2, dtype=torch.long), 0.1, steps=0)


def test_run_attack_table(ckpts, tmp_path):
    res = run_attack(AttackConfig(checkpoint=str(ckpts["a"]), substitutes=[str(ckpts["b"]), str(ckpts["wide"])],
                                  out=str(tmp_path), eps=[0.0, 8.0], steps=3, limit=96, device="cpu", quiet=True))
    rows = {(r["attack"], r["source"], r["eps_255"]): r for r in res["rows"]}
    clean = rows[("clean", "a", 0.0)]["top1_acc"]
    model, _ = load_model(ckpts["a"])
    x, y = digits(False).tensors
    keep = torch.randperm(len(y), generator=generator_for(Stream.EVAL_SUBSET, 0))[:96].sort().values  # --seed 0's subset
    with torch.no_grad():
        assert clean == pytest.approx((model(x[keep]).argmax(1) == y[keep]).float().mean().item())
    assert rows[("pgd", "b", 8.0)]["kind"] == "gray-box"
    assert rows[("pgd", "wide", 8.0)]["kind"] == "black-box"
    for key, r in rows.items():  # eps=0 is the clean accuracy for every attack
        if key[2] == 0.0:
            assert r["top1_acc"] == pytest.approx(clean)
    assert rows[("pgd", "a", 8.0)]["top1_acc"] < clean
    assert rows[("pgd", "a", 8.0)]["top1_acc"] <= rows[("pgd", "b", 8.0)]["top1_acc"]  # white-box is strongest
    saved = json.loads((tmp_path / "robust.json").read_text())
    assert saved["rows"] == res["rows"]
    assert (tmp_path / "robust.csv").read_text().count("\n") == len(res["rows"]) + 1
    assert (tmp_path / "robust.png").stat().st_size > 1000


def test_attack_cli_errors(ckpts, tmp_path, capsys):
    assert main(["attack", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["attack", "--checkpoint", str(ckpts["a"]), "--out", str(tmp_path), "--eps", "-2"]) == 2
    assert "eps must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "robust.csv").exists()


def test_torchattacks_oracle_if_installed(ckpts, batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, _ = load_model(ckpts["a"])
    x, y = batch
    theirs = torchattacks.FGSM(model, eps=8 / 255)(x, y)
    assert torch.allclose(fgsm(model, x, y, 8 / 255), theirs, atol=1e-6)


def test_torchattacks_pgd_oracle_if_installed(ckpts, batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, _ = load_model(ckpts["a"])
    x, y = batch
    eps, step = 8 / 255, 2 / 255
    theirs = torchattacks.PGD(model, eps=eps, alpha=step, steps=5, random_start=False)(x, y)
    ours = pgd(model, x, y, eps, steps=5, step_size=step, random_start=False)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_same_file_names_get_distinct_rows(ckpts, tmp_path):
    """Trainer outputs are all 'last.pt': sources must not collide in the table."""
    import shutil

    from kmix.analysis.models import unique_labels

    for name in ("x", "y", "z"):
        (tmp_path / name).mkdir()
    shutil.copy(ckpts["a"], tmp_path / "x" / "last.pt")
    shutil.copy(ckpts["a"], tmp_path / "y" / "last.pt")  # the target's own weights as a 'substitute'
    shutil.copy(ckpts["wide"], tmp_path / "z" / "last.pt")
    paths = [str(tmp_path / n / "last.pt") for n in ("x", "y", "z")]
    assert unique_labels(paths) == ["x_last", "y_last", "z_last"]
    res = run_attack(AttackConfig(checkpoint=paths[0], substitutes=paths[1:], out=str(tmp_path / "o"), eps=[16.0],
                                  steps=4, random_start=False, limit=64, device="cpu", quiet=True))
    by_source = {(r["attack"], r["source"]): r for r in res["rows"]}
    assert set(by_source) == {("clean", "x_last"), ("fgsm", "x_last"), ("pgd", "x_last"), ("pgd", "y_last"),
                              ("pgd", "z_last")}
    # deterministic PGD from identical weights is the white-box attack itself
    assert by_source[("pgd", "y_last")]["top1_acc"] == by_source[("pgd", "x_last")]["top1_acc"]
    assert by_source[("pgd", "z_last")]["top1_acc"] > by_source[("pgd", "x_last")]["top1_acc"]
