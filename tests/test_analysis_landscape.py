"""Loss landscape: sigma=0 is the plain loss, filter normalisation, determinism, outputs, errors."""
from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from kmix.analysis.data import stack_dataset
from kmix.analysis.hessian import LossOnData
from kmix.analysis.landscape import (LandscapeConfig, gaussian_direction, loss_surface, loss_vs_sigma,
                                     run_landscape, summarize_sigma)
from kmix.cli.main import main
from kmix.train.checkpoint import load_model
from analysis_support import digits, train_digits_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_digits_checkpoint(tmp_path_factory.mktemp("land") / "m.pt", seed=0)


@pytest.fixture(scope="module")
def loss(ckpt):
    model, _ = load_model(ckpt)
    return LossOnData(model, stack_dataset(torch.utils.data.Subset(digits(False), range(100)), batch_size=32))


def test_sigma_zero_equals_plain_loss(loss):
    x, y = digits(False).tensors
    with torch.no_grad():
        plain = F.cross_entropy(loss.model(x[:100]), y[:100]).item()
    rows = loss_vs_sigma(loss, [0.0], repeats=3)
    assert len(rows) == 1  # no draws needed at sigma 0
    assert rows[0]["loss"] == pytest.approx(plain, rel=1e-5)


def test_noise_raises_loss_and_leaves_model_untouched(loss):
    before = [p.detach().clone() for p in loss.params]
    rows = loss_vs_sigma(loss, [0.0, 0.5], repeats=3, seed=1)
    summary = summarize_sigma(rows)
    assert [s["draws"] for s in summary] == [1, 3]
    assert summary[1]["loss_mean"] > summary[0]["loss_mean"] and summary[1]["loss_std"] > 0
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, loss.params))
    assert loss_vs_sigma(loss, [0.5], repeats=3, seed=1) == [r for r in rows if r["sigma"] == 0.5]


def test_filter_normalised_direction(loss):
    d = gaussian_direction(loss, "filter", torch.Generator().manual_seed(0))
    for p, di in zip(loss.params, d):
        if p.dim() <= 1:
            assert torch.count_nonzero(di) == 0  # biases / BN affine stay put
        else:
            assert torch.allclose(di.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-4)
    with pytest.raises(ValueError, match="noise mode"):
        gaussian_direction(loss, "uniform", torch.Generator())


def test_surface_centre_is_the_plain_loss(loss):
    zero = [torch.zeros_like(p) for p in loss.params]
    a, b, grid = loss_surface(loss, zero, zero, radius=0.1, grid=3)
    assert a == pytest.approx([-0.1, 0.0, 0.1])
    assert all(v == pytest.approx(loss.evaluate()[0], rel=1e-6) for row in grid for v in row)


@pytest.mark.slow
def test_run_landscape_outputs(ckpt, tmp_path):
    other = train_digits_checkpoint(tmp_path / "other.pt", seed=3)
    res = run_landscape(LandscapeConfig(checkpoints=[str(ckpt), str(other)], out=str(tmp_path / "out"),
                                        sigmas=[0.0, 0.05], repeats=2, grid=3, power_iters=5, trace_samples=3,
                                        limit=64, device="cpu", quiet=True))
    out = tmp_path / "out"
    assert {m["model"] for m in res["models"]} == {"m", "other"}
    for m in res["models"]:
        assert len(m["top_eigenvalues"]) == 2 and m["top_eigenvalues"][0] > 0
        sigma0 = [s for s in res["sigma"] if s["model"] == m["model"] and s["sigma"] == 0.0][0]
        assert sigma0["loss_mean"] == pytest.approx(m["loss"])
        with open(out / f"surface_{m['model']}.csv") as f:
            grid = list(csv.DictReader(f))
        assert len(grid) == 9
        centre = [r for r in grid if float(r["alpha"]) == 0 and float(r["beta"]) == 0][0]
        assert float(centre["loss"]) == pytest.approx(m["loss"], rel=1e-5)
        assert (out / f"surface_{m['model']}.png").stat().st_size > 1000
    assert json.loads((out / "landscape.json").read_text())["models"] == res["models"]
    assert (out / "sigma.png").stat().st_size > 1000


def test_landscape_bad_input(ckpt, tmp_path, capsys):
    assert main(["landscape", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["landscape", "--checkpoint", str(ckpt), "--out", str(tmp_path), "--sigmas", "-0.1"]) == 2
    assert "sigmas" in capsys.readouterr().err
    with pytest.raises(ValueError, match="eigen"):
        LandscapeConfig(checkpoints=[str(ckpt)], eigen=1).validate()


def test_imagefolder_data_is_read_at_the_checkpoints_input_size(tmp_path):
    """ImageFolder data has no size of its own: the scan reads it at the size the checkpoint was trained at
    (not a fixed default), and refuses checkpoints of different sizes."""
    from kmix.train import TrainConfig, fit

    from data_sources import tiny_imagefolder

    data = str(tiny_imagefolder(tmp_path / "imgs"))  # 24 px images
    for size in (16, 20):
        fit(TrainConfig(data=data, image_size=size, model="small_cnn", model_kwargs={"width": 8}, mix="none",
                        epochs=1, batch_size=8, out=str(tmp_path / f"m{size}"), quiet=True, tensorboard=False,
                        plot=False))
    fast = dict(sigmas=[0.0], repeats=1, eigen=2, power_iters=2, trace_samples=0, surface=False, limit=8,
                device="cpu", quiet=True, data=data)

    def loss(checkpoints, **kw) -> float:
        res = run_landscape(LandscapeConfig(checkpoints=checkpoints, out=str(tmp_path / "out"), **{**fast, **kw}))
        return res["models"][0]["loss"]

    m16 = str(tmp_path / "m16" / "last.pt")
    assert loss([m16]) == pytest.approx(loss([m16], image_size=16), rel=1e-6)
    assert loss([m16]) != pytest.approx(loss([m16], image_size=24), rel=1e-6)  # the scan is deterministic
    with pytest.raises(ValueError, match="takes 20 px images but .* takes 16"):
        loss([m16, str(tmp_path / "m20" / "last.pt")])
