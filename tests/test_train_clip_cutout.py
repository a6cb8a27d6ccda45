"""Gradient clipping and Cutout (the DARTS evaluation extras): they do what they say and fail clearly."""
from __future__ import annotations

import pytest
import torch

from kmix.data.transforms import cutout
from kmix.train import TrainConfig, fit
from kmix.train.checkpoint import load_checkpoint


def _run(out, **kw):
    cfg = dict(data="digits", model="small_cnn", model_kwargs={"width": 8}, mix="none", epochs=1, batch_size=32,
               lr=0.1, weight_decay=0.0, limit_train_batches=3, out=str(out), quiet=True, tensorboard=False,
               plot=False, seed=1)
    cfg.update(kw)
    fit(TrainConfig(**cfg))
    return load_checkpoint(out / "last.pt")["model"]


def test_grad_clip_bounds_every_update(tmp_path):
    free = _run(tmp_path / "free")
    clipped = _run(tmp_path / "clip", grad_clip=1e-4)
    moved_free = sum((free[k].float() - clipped[k].float()).norm() ** 2 for k in free if free[k].is_floating_point())
    assert moved_free > 0  # clipping changed the run
    # same seed, same initial weights; a run clipped to ~0 barely moves from them. With |g| <= 1e-4,
    # lr 0.1, Nesterov momentum 0.9 and 3 steps, each weight tensor moves < 3 * 0.1 * 1e-4 * 2.71.
    init = _run(tmp_path / "init", grad_clip=1e-12)
    bound = 3 * 0.1 * 1e-4 * 2.71
    for k, v in clipped.items():
        if v.is_floating_point() and "running" not in k and "num_batches" not in k:
            assert (v - init[k]).norm() <= bound + 1e-6, k


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(64, 3, 10, 12)
    out = cutout(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.ones(64, 3, 10, 12))  # input untouched
    zeros = (out[:, 0] == 0)
    assert torch.equal(zeros, (out == 0).all(dim=1))  # same square in every channel
    counts = zeros.flatten(1).sum(1)
    assert counts.max() == 16 and counts.min() >= 4  # full square inside, clipped at borders (>= 2x2)
    for img in zeros:  # the zeroed pixels form one rectangle
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert img.sum() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
    assert torch.equal(cutout(x, 0), x)


def test_cutout_and_grad_clip_bad_values():
    with pytest.raises(ValueError, match="cutout size"):
        cutout(torch.ones(2, 1, 4, 4), -1)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0)
    with pytest.raises(ValueError, match="cutout"):
        TrainConfig(cutout=-2)


def test_training_with_cutout_runs_and_is_deterministic(tmp_path):
    a = _run(tmp_path / "a", cutout=6)
    b = _run(tmp_path / "b", cutout=6)
    c = _run(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
