"""Two options a reproduction of the official DCutMix code needs: `keep_last_batch` (a DataLoader with
drop_last=False: ceil(N / B) steps, the last one a mixed partial batch) and `norm_mean`/`norm_std` (the
normalisation the model trains and is evaluated with)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import yaml

from kmix.analysis.models import load_analysis_model
from kmix.cli.main import main
from kmix.data.cache import ImageArrays
from kmix.data.device_loader import DeviceLoader
from kmix.data.order import batches_per_epoch, epoch_permutation
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from kmix.train.distributed import DistInfo
from kmix.train.loop import Trainer
from kmix.train.sampling import EpochBatchSampler

from data_sources import write_cifar_tree

N, B = 50, 16  # 3 full batches + a partial one of 2


def _arrays(n: int) -> ImageArrays:
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 4, 4, 3).contiguous()
    return ImageArrays(images=images, labels=torch.arange(n) % 10, classes=tuple("abcdefghij"), source="made",
                       fingerprint="made")


@pytest.fixture(scope="module")
def cifar50(tmp_path_factory):
    """A CIFAR-10 JPEG-layout tree of 50 training images (5 per class), read by both pipelines."""
    return str(write_cifar_tree(tmp_path_factory.mktemp("c10") / "tree", n_train=5, n_test=1))


def _cfg(root, out, **kw) -> TrainConfig:
    base = dict(data="cifar10", data_root=root, model="small_cnn", model_kwargs={"width": 8}, mix="dcutmix", k=3,
                alpha=1.0, epochs=2, batch_size=B, lr=0.05, augment=False, out=str(out), quiet=True,
                tensorboard=False, plot=False, seed=1)
    return TrainConfig(**{**base, **kw})


# --- keep_last_batch ----------------------------------------------------------------------------
def test_steps_per_epoch_count_the_partial_batch_only_when_kept():
    assert batches_per_epoch(N, B) == 3 and batches_per_epoch(N, B, keep_last=True) == 4
    assert batches_per_epoch(48, B, keep_last=True) == 3 and batches_per_epoch(10, B, keep_last=True) == 1
    assert batches_per_epoch(N, B, 2, keep_last=True) == 2  # the cap still wins
    with pytest.raises(ValueError, match=r"^keep_last_batch: the last batch of each epoch would hold 1 image "
                                         r"\(49 training images, batch_size 16\)[^\n]*$"):
        batches_per_epoch(49, B, keep_last=True)
    assert batches_per_epoch(49, B) == 3 and batches_per_epoch(49, B, 3, keep_last=True) == 3  # never reached


def test_both_samplers_cover_every_image_once_with_the_partial_batch_last():
    order = epoch_permutation(N, 5, 2).tolist()
    sampler = [[i for _, i in keys] for keys in EpochBatchSampler(N, B, seed=5, epoch=2, keep_last=True)]
    loader = DeviceLoader(_arrays(N), device="cpu", batch_size=B, seed=5, keep_last=True)
    device = [i.tolist() for _, _, i in loader.epoch(2, with_indices=True)]
    assert [len(b) for b in sampler] == [16, 16, 16, 2] and sum(sampler, []) == order and device == sampler
    assert len(list(EpochBatchSampler(N, B, seed=5, epoch=2))) == 3  # off: dropped, as before
    # several steps per call: the last call ends with the partial batch; a resume skips the batches done
    calls = [i.tolist() for _, _, i in loader.epoch(2, with_indices=True, steps_per_call=3)]
    assert calls == [sum(sampler[:3], []), sampler[3]]
    assert [i.tolist() for _, _, i in loader.epoch(2, start_batch=3, with_indices=True)] == [sampler[3]]
    assert [[i for _, i in k] for k in EpochBatchSampler(N, B, seed=5, epoch=2, keep_last=True, start_batch=2)] \
        == sampler[2:]
    with pytest.raises(ValueError, match="keep_last_batch needs a single process"):
        EpochBatchSampler(N, B, seed=5, epoch=2, world=2, keep_last=True)
    with pytest.raises(ValueError, match="keep_last_batch needs a single process"):
        DeviceLoader(_arrays(N), device="cpu", batch_size=B, seed=5, world=2, keep_last=True)


def _spy(monkeypatch):
    """Record, per trained step, (epoch, dataset indices, targets) and, per mixer call, (unmixed x, y, mixed x)."""
    steps, mixes = [], []
    steps_of, mix_of = Trainer.steps, Trainer.mix

    def spy_steps(self):
        for item in steps_of(self):
            steps.append((self.state.progress.epoch, item[4].tolist(), item[1]))
            yield item

    def spy_mix(self, x, y, step):
        mixed, target = mix_of(self, x, y, step)
        mixes.append((x, y, mixed, target))
        return mixed, target

    monkeypatch.setattr(Trainer, "steps", spy_steps)
    monkeypatch.setattr(Trainer, "mix", spy_mix)
    return steps, mixes


@pytest.mark.parametrize("loader, per", [("workers", 1), ("device", 1), ("device", 3)])
def test_kept_partial_batch_is_trained_mixed_and_counted(cifar50, tmp_path, monkeypatch, loader, per):
    steps, mixes = _spy(monkeypatch)
    summary = fit(_cfg(cifar50, tmp_path / "keep", loader=loader, prepare_steps=per, keep_last_batch=True))
    assert summary["loader"] == loader and summary["steps"] == 2 * 4
    for epoch in range(2):
        mine = [(index, t) for e, index, t in steps if e == epoch]
        assert [len(i) for i, _ in mine] == [16, 16, 16, 2]
        assert sorted(sum((i for i, _ in mine), [])) == list(range(N))  # every image exactly once
        for _, target in mine:
            torch.testing.assert_close(target.sum(1), torch.ones(len(target)))
    state = load_checkpoint(tmp_path / "keep" / "last.pt")
    assert [r["images"] for r in state["history"]] == [N, N] and [r["steps"] for r in state["history"]] == [4, 8]
    assert state["scheduler"]["lr_lambdas"][0]["steps_per_epoch"] == 4
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # the cosine ends with the last step
    if per == 1:  # the partial batch is mixed among itself: the pool is those 2 images
        x, y, mixed, target = mixes[3]
        assert len(x) == 2 and len(mixes) == 8
        assert bool((mixed[:, None] == x[None]).any(1).all())  # every value is cut from a pool image
        assert set(torch.nonzero(target.sum(0)).flatten().tolist()) <= set(y.tolist())
        assert any(not torch.equal(mixed[i], x[i]) for i in range(2))  # it was mixed, not passed through
    steps.clear()
    dropped = fit(_cfg(cifar50, tmp_path / "drop", loader=loader, prepare_steps=per))
    assert dropped["steps"] == 2 * 3 and [len(i) for _, i, _ in steps] == [16] * 6
    assert [r["images"] for r in load_checkpoint(tmp_path / "drop" / "last.pt")["history"]] == [48, 48]


@pytest.mark.parametrize("loader, per, cut", [("workers", 1, 3), ("device", 1, 6), ("device", 3, 5)])
def test_resume_mid_epoch_with_the_kept_batch_is_exact(cifar50, tmp_path, loader, per, cut):
    cfg = dict(loader=loader, prepare_steps=per, keep_last_batch=True, augment=True, ckpt_every_steps=1)
    fit(_cfg(cifar50, tmp_path / "ref", **cfg))
    with pytest.raises(TrainingStopped):  # stands in for a kill after step `cut` (epoch 2 for 6 and 5)
        fit(_cfg(cifar50, tmp_path / "cut", **cfg), stop_after_steps=cut)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["global_step"] == cut
    fit(_cfg(cifar50, tmp_path / "cut", resume=True, **cfg))
    ref, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ref["global_step"] == got["global_step"] == 8
    assert [r["images"] for r in got["history"]] == [N, N]
    for name in ref["model"]:
        assert torch.equal(ref["model"][name], got["model"][name]), name


def test_keep_last_batch_is_refused_under_several_processes_and_for_a_one_image_batch(cifar50, tmp_path):
    with pytest.raises(ValueError, match=r"^keep_last_batch needs a single process \(2 here\)[^\n]*$"):
        Trainer(_cfg(cifar50, tmp_path / "ddp", keep_last_batch=True), torch.device("cpu"), DistInfo(world=2))
    with pytest.raises(ValueError, match="keep_last_batch: the last batch of each epoch would hold 1 image"):
        fit(_cfg(cifar50, tmp_path / "one", keep_last_batch=True, batch_size=7))  # 50 = 7 * 7 + 1
    assert not (tmp_path / "one" / "last.pt").exists()
    with pytest.raises(TypeError, match="keep_last_batch must be true or false"):
        TrainConfig(keep_last_batch="yes")


def test_a_run_folder_from_before_the_options_resumes_as_before(tmp_path):
    """config.yaml and last.pt without the new keys (older kmix): the defaults stand in, the resume is exact."""
    cfg = dict(model_kwargs={"width": 8}, epochs=2, batch_size=32, limit_train_batches=3, ckpt_every_steps=2,
               quiet=True, tensorboard=False, plot=False, seed=3)
    fit(TrainConfig(out=str(tmp_path / "ref"), **cfg))
    old = tmp_path / "old"
    with pytest.raises(TrainingStopped):
        fit(TrainConfig(out=str(old), **cfg), stop_after_steps=2)
    new_keys = ("keep_last_batch", "norm_mean", "norm_std")
    saved = yaml.safe_load((old / "config.yaml").read_text())
    (old / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in saved.items() if k not in new_keys}))
    state = load_checkpoint(old / "last.pt")
    state["config"] = {k: v for k, v in state["config"].items() if k not in new_keys}
    save_checkpoint(old / "last.pt", state)
    assert main(["train", "--resume", "--out", str(old)]) == 0
    ref, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(old / "last.pt")
    for name in ref["model"]:
        assert torch.equal(ref["model"][name], got["model"][name]), name
    with pytest.raises(ValueError, match=r"keep_last_batch: False -> True"):  # it defines the run
        fit(TrainConfig(out=str(old), resume=True, keep_last_batch=True, **cfg))


# --- norm_mean / norm_std -----------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    ({"norm_mean": [0.5, float("nan"), 0.4]}, "norm_mean must be a list of finite numbers"),
    ({"norm_std": [0.2, float("inf"), 0.2]}, "norm_std must be a list of finite numbers"),
    ({"norm_mean": "0.5"}, "norm_mean must be a list of finite numbers"),
    ({"norm_std": []}, "norm_std must be a list of finite numbers"),
    ({"norm_std": [0.2, True, 0.2]}, "norm_std must be a list of finite numbers"),
    ({"norm_std": [0.2, 0.0, 0.2]}, r"norm_std must be > 0 in every channel, got \[0.2, 0.0, 0.2\]"),
    ({"norm_std": [-0.2]}, "norm_std must be > 0 in every channel"),
    ({"norm_mean": [0.5, 0.5], "norm_std": [0.2]}, "norm_mean and norm_std must have one value per channel each"),
])
def test_bad_norm_values_fail_in_one_line_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(**changes)
    assert "\n" not in str(err.value)


def test_norm_stats_with_other_channels_than_the_data_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"^norm_mean must have one value per channel of digits \(1\), got 3") as err:
        fit(TrainConfig(norm_mean=[0.4914, 0.4822, 0.4465], out=str(tmp_path / "r"), quiet=True))
    assert "\n" not in str(err.value) and not (tmp_path / "r" / "last.pt").exists()


def _normalisation(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the Normalized wrapper feeds its net for x."""
    net, model.net = model.net, nn.Identity()
    try:
        return model(x)
    finally:
        model.net = net


def test_a_model_trained_with_custom_stats_is_normalised_with_them_everywhere(cifar50, tmp_path, capsys):
    mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]  # the official code's, on CIFAR-10
    out = tmp_path / "run"
    assert main(["train", "--data", "cifar10", "--data-root", cifar50, "--model", "small_cnn", "--model-arg",
                 "width=8", "--epochs", "1", "--batch-size", "16", "--no-augment", "--norm-mean", *map(str, mean),
                 "--norm-std", *map(str, std), "--out", str(out), "--quiet", "--no-tensorboard", "--no-plot"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["norm_mean"] == mean and saved["norm_std"] == std
    x = torch.rand(4, 3, 32, 32)
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    for name in ("last.pt", "best.pt"):
        model, meta = load_model(out / name)  # what kmix score and evaluation rebuild
        assert meta["mean"] == mean and meta["std"] == std
        torch.testing.assert_close(_normalisation(model, x), expected)
    analysis = load_analysis_model(out / "best.pt")  # kmix eval / attack / ood
    torch.testing.assert_close(_normalisation(analysis.model, x), expected)
    # and the default stays the dataset's own statistics
    fit(_cfg(cifar50, tmp_path / "own", epochs=1))
    model, meta = load_model(tmp_path / "own" / "last.pt")
    assert meta["mean"] == list(meta["data"]["mean"]) and meta["std"] == list(meta["data"]["std"]) != std
    own = (x - torch.tensor(meta["data"]["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["data"]["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(_normalisation(model, x), own)
    # a bad value on the command line is one line and exit 2
    capsys.readouterr()
    assert main(["train", "--norm-std", "0", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "norm_std must be > 0 in every channel" in capsys.readouterr().err


def test_a_recipe_sets_the_official_options_as_lists(tmp_path):
    from kmix.train import load_recipe

    recipe = tmp_path / "official.yaml"
    recipe.write_text("data: cifar100\nkeep_last_batch: true\nnorm_mean: [0.4914, 0.4822, 0.4465]\n"
                      "norm_std: [0.2023, 0.1994, 0.2010]\n")
    cfg = load_recipe(recipe)
    assert cfg.keep_last_batch and cfg.norm_mean == [0.4914, 0.4822, 0.4465] and cfg.norm_std[2] == 0.2010
