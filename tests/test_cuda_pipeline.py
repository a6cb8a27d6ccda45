"""The device-resident pipeline on CUDA: the same batches as on the CPU (crop/flip bit-exact, the
resized crop within 1e-5), and a `kmix train` run on it that evaluates on the test split."""
from __future__ import annotations

import pytest
import torch

from cuda_support import CUDA_ONLY, DEVICE
from data_sources import tar_tree, write_cifar_tree
from kmix.data.cache import ImageArrays
from kmix.data.device_loader import DeviceLoader
from kmix.train import TrainConfig, fit

pytestmark = CUDA_ONLY


def _arrays(n: int = 64, size: int = 32) -> ImageArrays:
    images = (torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    return ImageArrays(images, torch.arange(n) % 10, tuple(map(str, range(10))), "random", "")


@pytest.mark.parametrize("augment, atol", [(None, 0.0), ("crop_flip", 0.0), ("resized_crop", 1e-5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_device_batches_on_cuda_equal_the_cpu_batches(augment, atol, channels_last):
    kw = dict(batch_size=16, seed=3, augment=augment, indices=list(range(1, 64, 2)), channels_last=channels_last)
    cpu, gpu = DeviceLoader(_arrays(), device="cpu", **kw), DeviceLoader(_arrays(), device=DEVICE, **kw)
    gens = lambda: (torch.Generator().manual_seed(50 + s) for s in range(10))  # noqa: E731
    for (xc, yc), (xg, yg) in zip(cpu.epoch(2, 0, gens()), gpu.epoch(2, 0, gens()), strict=True):
        assert xg.device.type == torch.device(DEVICE).type and torch.equal(yc, yg.cpu())
        assert xg.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert torch.allclose(xc, xg.cpu(), rtol=0, atol=atol), (augment, (xc - xg.cpu()).abs().max())


def test_kmix_train_on_the_device_pipeline_runs_and_evaluates_the_test_split(tmp_path):
    tar_tree(write_cifar_tree(tmp_path / "tree", n_train=8, n_test=3), tmp_path / "c10.tar.gz")
    summary = fit(TrainConfig(data="cifar10", data_root=str(tmp_path / "c10.tar.gz"), model="resnet20", mix="dcutmix",
                              k=3, alpha=1 / 3, epochs=2, batch_size=16, device=DEVICE, amp="bf16", channels_last=True,
                              out=str(tmp_path / "run"), quiet=True, tensorboard=False, plot=False))
    assert summary["loader"] == "device" and summary["eval_split"] == "test" and summary["eval_images"] == 30
    assert summary["steps"] == 2 * (80 // 16) and summary["top1_err"] is not None


def test_prepared_steps_on_cuda_track_the_cpu_run_with_the_same_setting(tmp_path):
    """The CUDA default prepares 16 steps per call; a CPU run told to do the same draws the same crops
    and partners (parameters come from CPU generators), so fp32 losses agree to float noise."""
    from cuda_support import ON_CPU, relative_gap, tf32
    from kmix.train.checkpoint import load_checkpoint

    tree = str(write_cifar_tree(tmp_path / "tree", n_train=16, n_test=2))
    cfg = TrainConfig(data="cifar10", data_root=tree, model="small_cnn", model_kwargs={"width": 8}, mix="dcutmix",
                      k=3, alpha=1.0, epochs=2, batch_size=8, lr=0.05, loader="device", quiet=True,
                      tensorboard=False, plot=False, prepare_steps=16 if ON_CPU else None)
    with tf32(False):
        gpu = fit(cfg.replace(device=DEVICE, out=str(tmp_path / "gpu")))
    cpu = fit(cfg.replace(device="cpu", prepare_steps=16, out=str(tmp_path / "cpu")))
    assert load_checkpoint(tmp_path / "gpu" / "last.pt")["prepare_steps"] == 16
    assert gpu["steps"] == cpu["steps"] == 40  # 160 images, batch 8: calls of 16, 4, 16 and 4 steps
    gap = relative_gap(gpu["train_loss"], cpu["train_loss"])
    assert gap < 1e-3, (gpu["train_loss"], cpu["train_loss"])
