"""Training on real-layout data: the device pipeline in `fit` (resume, subsets, loader choice) and
evaluation that says what it evaluated (held-out split required, --val-fraction, --eval-on-train, --eval-every)."""
from __future__ import annotations

import json

import pytest
import torch

from kmix.cli.main import main
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train.checkpoint import load_checkpoint
from kmix.train.data_setup import stratified_holdout

from data_sources import tar_tree, write_cifar_tree


def cfg(tmp_path, out="run", **kw) -> TrainConfig:
    base = dict(data="cifar10", data_root=str(tmp_path / "c10.tar.gz"), model="small_cnn", model_kwargs={"width": 8},
                mix="dcutmix", k=3, alpha=1.0, epochs=2, batch_size=10, lr=0.05, out=str(tmp_path / out),
                quiet=True, tensorboard=False, plot=False, seed=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def c10(tmp_path):
    tar_tree(write_cifar_tree(tmp_path / "tree", n_train=4, n_test=2), tmp_path / "c10.tar.gz")
    return tmp_path


def test_cifar_tarball_trains_on_the_device_pipeline_and_evaluates_on_test(c10):
    summary = fit(cfg(c10, epochs=1))
    assert summary["loader"] == "device" and summary["eval_split"] == "test" and summary["eval_images"] == 20
    assert summary["train_images"] == 40 and summary["steps"] == 4
    workers = fit(cfg(c10, "w", epochs=1, loader="workers"))
    assert workers["loader"] == "workers" and workers["eval_images"] == 20


def test_device_pipeline_resumes_bit_identically_with_a_subset(c10):
    subset = list(range(0, 40, 2))  # 20 images -> 2 steps per epoch
    ref = fit(cfg(c10, "ref", epochs=3, subset=subset))
    with pytest.raises(TrainingStopped):
        fit(cfg(c10, "cut", epochs=3, subset=subset), stop_after_steps=3)
    fit(cfg(c10, "cut", epochs=3, subset=subset, resume=True))
    a, b = load_checkpoint(c10 / "ref" / "last.pt"), load_checkpoint(c10 / "cut" / "last.pt")
    assert a["global_step"] == b["global_step"] == 6 == ref["steps"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "wall_s", "train_s")} for r in rows]
    assert strip(a["history"]) == strip(b["history"])


def test_eval_every_skips_epochs_but_always_evaluates_the_last(c10):
    fit(cfg(c10, epochs=3, eval_every=2))
    rows = [json.loads(x) for x in (c10 / "run" / "metrics.jsonl").read_text().splitlines()]
    assert ["top1_err" in r for r in rows] == [False, True, True]


def test_val_fraction_holds_out_a_seeded_stratified_split(c10):
    summary = fit(cfg(c10, epochs=1, val_fraction=0.25))
    assert summary["eval_split"] == "val" and summary["eval_images"] == 10 and summary["train_images"] == 30
    labels = [i // 4 for i in range(40)]
    held = stratified_holdout(labels, 0.25)
    assert held == stratified_holdout(labels, 0.25) and len(held) == 10
    assert sorted(labels[i] for i in held) == list(range(10))  # one per class
    with pytest.raises(ValueError, match="share 1 image"):
        fit(cfg(c10, "s", val_fraction=0.25, subset=[held[0], (held[0] + 1) % 40 if (held[0] + 1) % 40 not in held
                                                      else (held[0] + 2) % 40]))


def test_eval_on_train_says_train_in_its_keys(c10):
    summary = fit(cfg(c10, epochs=1, eval_on_train=True, augment=False))
    assert summary["eval_split"] == "train" and summary["eval_images"] == 40
    assert "top1_err" not in summary and "train_top1_err" in summary and "best_train_top1_err" in summary
    with pytest.raises(ValueError, match="exclude each other"):
        fit(cfg(c10, "x", eval_on_train=True, val_fraction=0.1))


def test_imagefolder_without_a_held_out_split_is_refused_naming_split_imagefolder(tmp_path, capsys):
    tree = write_cifar_tree(tmp_path / "tree", n_train=2, n_test=1)
    with pytest.raises(ValueError, match="split_imagefolder.*--val-fraction.*--eval-on-train"):
        fit(cfg(tmp_path, data=str(tree / "train"), data_root=None, image_size=32))
    assert not (tmp_path / "run").exists()
    assert main(["train", "--data", str(tree / "train"), "--image-size", "32", "--out", str(tmp_path / "r2"),
                 "--quiet"]) == 2
    assert "split_imagefolder" in capsys.readouterr().err
    ok = fit(cfg(tmp_path, "ok", data=str(tree / "train"), data_root=None, image_size=32, val_fraction=0.5, epochs=1))
    assert ok["eval_split"] == "val" and ok["eval_images"] == 10


def test_device_loader_needs_uint8_data_and_an_empty_subset_is_named(c10):
    with pytest.raises(ValueError, match="loader 'device' needs uint8"):
        fit(TrainConfig(data="digits", loader="device", out=str(c10 / "d"), quiet=True))
    with pytest.raises(ValueError, match="training subset is empty"):
        fit(cfg(c10, "e", subset=[]))
