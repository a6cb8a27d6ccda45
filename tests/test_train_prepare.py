"""`prepare_steps`: the device pipeline augments and mixes several steps' batches in one call.

The batches and their order are those of one call per step; a run resumed inside a call replays it
exactly; the auto value is 16 only on CUDA (and fewer for big images), 1 elsewhere."""
from __future__ import annotations

import pytest
import torch

from kmix.data.cache import ImageArrays
from kmix.data.device_loader import DeviceLoader
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train.checkpoint import load_checkpoint
from kmix.train.data_setup import build_train_data, resolve_prepare_steps

from data_sources import write_cifar_tree


def _arrays(n: int, side: int = 4) -> ImageArrays:
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, side, side, 3).contiguous()
    return ImageArrays(images=images, labels=torch.arange(n) % 10, classes=tuple("abcdefghij"), source="made",
                       fingerprint="made")


@pytest.mark.parametrize("world", [1, 2])
def test_a_call_holds_the_per_step_batches_in_step_order(world):
    """Each rank's call of S steps is exactly its S per-step shares concatenated (the last call shorter)."""
    for rank in range(world):
        loader = DeviceLoader(_arrays(100), device="cpu", batch_size=8, seed=5, rank=rank, world=world)
        single = [i.tolist() for _, _, i in loader.epoch(1, with_indices=True)]
        calls = [i.tolist() for _, _, i in loader.epoch(1, with_indices=True, steps_per_call=3)]
        assert len(single) == 12 and [len(c) for c in calls] == [3 * 8 // world] * 4
        assert sum(calls, []) == sum(single, [])
        later = [i.tolist() for _, _, i in loader.epoch(1, start_batch=9, with_indices=True, steps_per_call=2)]
        assert later == [sum(single[9:11], []), single[11]]
    with pytest.raises(ValueError, match="steps_per_call must be an int >= 1, got 0"):
        next(loader.epoch(1, steps_per_call=0))


@pytest.fixture(scope="module")
def cifar_tree(tmp_path_factory):
    return str(write_cifar_tree(tmp_path_factory.mktemp("c10") / "tree", n_train=8, n_test=2))


def _cfg(root, out, **kw) -> TrainConfig:
    base = dict(data="cifar10", data_root=root, model="small_cnn", model_kwargs={"width": 8}, mix="dcutmix", k=3,
                alpha=1.0, epochs=2, batch_size=8, lr=0.05, loader="device", out=str(out), quiet=True,
                tensorboard=False, plot=False, seed=1)
    return TrainConfig(**{**base, **kw})


def _weights(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "last.pt")["model"]


def test_without_augmentation_or_mixing_any_prepare_steps_trains_the_same_batches(cifar_tree, tmp_path):
    """80 images, batch 8: calls of 4, 4 and 2 steps slice into the very batches of one call per step."""
    runs = {s: fit(_cfg(cifar_tree, tmp_path / f"s{s}", mix="none", augment=False, prepare_steps=s)) for s in (1, 4)}
    assert runs[1]["steps"] == runs[4]["steps"] == 20
    a, b = _weights(tmp_path / "s1"), _weights(tmp_path / "s4")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_inside_a_call_replays_it_exactly(cifar_tree, tmp_path):
    cfg = dict(prepare_steps=4, ckpt_every_steps=3)
    fit(_cfg(cifar_tree, tmp_path / "ref", **cfg))
    with pytest.raises(TrainingStopped):  # stands in for a kill after step 3, inside the first call of 4 steps
        fit(_cfg(cifar_tree, tmp_path / "cut", **cfg), stop_after_steps=3)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step_in_epoch"] == 3
    with pytest.raises(ValueError, match=r"prepare_steps: 4 -> 2"):
        fit(_cfg(cifar_tree, tmp_path / "cut", resume=True, **{**cfg, "prepare_steps": 2}))
    fit(_cfg(cifar_tree, tmp_path / "cut", resume=True, ckpt_every_steps=3))  # auto keeps the run's own 4
    ref, cut = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ref["prepare_steps"] == cut["prepare_steps"] == 4 and ref["global_step"] == cut["global_step"] == 20
    for name in ref["model"]:
        assert torch.equal(ref["model"][name], cut["model"][name]), name
    # the setting is in effect: one call per step draws other crops and partners
    fit(_cfg(cifar_tree, tmp_path / "one", prepare_steps=1))
    one = _weights(tmp_path / "one")
    assert any(not torch.equal(one[n], ref["model"][n]) for n in one)


def test_auto_is_16_on_cuda_for_small_images_and_1_elsewhere(cifar_tree):
    cfg = _cfg(cifar_tree, None, batch_size=128)
    data = build_train_data(cfg, torch.device("cpu"))
    cuda = torch.device("cuda")  # only the device's type is read: the rule, not a GPU, is tested
    assert resolve_prepare_steps(cfg, data, cuda) == 16
    assert resolve_prepare_steps(cfg, data, torch.device("cpu")) == 1
    assert resolve_prepare_steps(cfg.replace(p=0.5), data, cuda) == 1
    assert resolve_prepare_steps(cfg.replace(prepare_steps=3), data, torch.device("cpu")) == 3
    # 224 px, batch 256: one batch of float images is 154 MB, so one step per call keeps under 256 MiB
    data.train_loader.images = torch.zeros(1, 224, 224, 3, dtype=torch.uint8)
    assert resolve_prepare_steps(cfg.replace(batch_size=256), data, cuda) == 1
    assert resolve_prepare_steps(cfg.replace(batch_size=64), data, cuda) == 6


def test_bad_prepare_steps_is_refused_naming_it(cifar_tree, tmp_path):
    with pytest.raises(ValueError, match="prepare_steps must be >= 1 or null"):
        _cfg(cifar_tree, tmp_path, prepare_steps=0)
    with pytest.raises(ValueError, match=r"prepare_steps must be 1 when p < 1"):
        _cfg(cifar_tree, tmp_path, prepare_steps=4, p=0.5)
    with pytest.raises(ValueError, match="prepare_steps 4 needs the device pipeline"):
        fit(_cfg(cifar_tree, tmp_path / "w", prepare_steps=4, loader="workers"))
    assert not (tmp_path / "w" / "last.pt").exists()
