"""The device-resident pipeline: per-sample crop/flip equal to torchvision's ops, their statistics,
random-resized-crop boxes, the epoch order and sharding of the worker pipeline, subsets, resume."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from kmix.data.cache import ImageArrays
from kmix.data.device_loader import DeviceLoader, crop_flip, resized_crop_boxes, resized_crop_flip
from kmix.train.sampling import EpochBatchSampler


def _coded_images(n: int, h: int = 32, w: int = 32) -> torch.Tensor:
    """uint8 (n, h, w, 3): channel 0 = row + 1, channel 1 = column + 1, channel 2 = image id (0 = padding)."""
    rows = torch.arange(1, h + 1).view(1, h, 1).expand(n, h, w)
    cols = torch.arange(1, w + 1).view(1, 1, w).expand(n, h, w)
    ids = torch.arange(n).view(n, 1, 1).expand(n, h, w)
    return torch.stack([rows, cols, ids], -1).to(torch.uint8)


def _recover(out: torch.Tensor, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(oy, ox, flip) of each crop, read off the coded pixels at the centre."""
    c = out.shape[1] // 2
    oy = out[:, c, c, 0].long() - 1 - c + pad
    left, right = out[:, c, c - 1, 1].long(), out[:, c, c + 1, 1].long()
    flip = left > right
    ox = torch.where(flip, out[:, c, c, 1].long() - 1 - (out.shape[2] - 1 - c), out[:, c, c, 1].long() - 1 - c) + pad
    return oy, ox, flip


def test_crop_flip_equals_torchvision_pad_crop_flip_per_sample():
    images = _coded_images(64)
    out = crop_flip(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    oy, ox, flip = _recover(out)
    for i in range(64):
        chw = TF.pad(images[i].permute(2, 0, 1), [4])
        ref = TF.crop(chw, int(oy[i]), int(ox[i]), 32, 32)
        ref = TF.horizontal_flip(ref) if flip[i] else ref
        assert torch.equal(out[i].permute(2, 0, 1), ref), i
    assert len(set(zip(oy.tolist(), ox.tolist(), flip.tolist()))) > 32  # per sample, not one crop per batch


def test_crop_flip_offsets_are_uniform_and_flips_half():
    out = crop_flip(_coded_images(9000, 12, 12), torch.Generator().manual_seed(2))
    oy, ox, flip = _recover(out)
    for offsets in (oy, ox):
        counts = torch.bincount(offsets, minlength=9).double()
        assert counts.numel() == 9 and counts.min() > 0
        chi2 = ((counts - 1000) ** 2 / 1000).sum()
        assert chi2 < 30  # 8 degrees of freedom: P(chi2 > 30) < 0.0003
    assert abs(flip.double().mean() - 0.5) < 4 * math.sqrt(0.25 / 9000)


def test_resized_crop_boxes_follow_torchvision_ranges():
    boxes = resized_crop_boxes(20000, 64, 48, torch.Generator().manual_seed(3))
    x0, y0, x1, y1 = boxes.unbind(1)
    w, h = x1 - x0, y1 - y0
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 48).all() and (y1 <= 64).all() and (w >= 1).all()
    area = w * h / (64 * 48)
    assert area.min() >= 0.06 and area.max() <= 1.0  # scale in [0.08, 1] up to rounding
    ratio = w / h
    big = (area < 0.999) & (w >= 20) & (h >= 20)  # ratio in [3/4, 4/3] up to rounding of the sides
    assert ratio[big].min() > 0.75 * 0.95 and ratio[big].max() < 4 / 3 * 1.05
    # the same law as torchvision's RandomResizedCrop.get_params: compare area and aspect moments
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    img = torch.zeros(3, 64, 48)
    ref = torch.tensor([RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(5000)],
                       dtype=torch.float64)
    ref_area, ref_ratio = ref[:, 3] * ref[:, 2] / (64 * 48), ref[:, 3] / ref[:, 2]
    for ours, theirs in ((area, ref_area), (ratio, ref_ratio)):
        se = math.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se


def test_resized_crop_of_the_whole_image_without_flip_is_identity():
    images = (torch.rand(4, 8, 8, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    out = resized_crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 8, 8) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    # a box covering the image, resampled to its own size, reproduces the pixels
    from torchvision.ops import roi_align

    x = TF.to_dtype(images.permute(0, 3, 1, 2), torch.float32, scale=True)
    rois = torch.tensor([[i, 0, 0, 8, 8] for i in range(4)], dtype=torch.float32)
    assert torch.allclose(roi_align(x, rois, 8, 1.0, -1, True), x, atol=1e-6)


def _arrays(n: int) -> ImageArrays:
    images = _coded_images(n, 8, 8)
    return ImageArrays(images, torch.arange(n) % 10, tuple(str(i) for i in range(10)), "coded", "")


def test_order_and_sharding_match_the_worker_sampler_with_subsets_and_resume():
    arrays, subset = _arrays(100), list(range(3, 100, 2))  # 49 items
    single = DeviceLoader(arrays, device="cpu", batch_size=8, seed=5, indices=subset)
    sampler = EpochBatchSampler(len(subset), 8, seed=5, epoch=2)
    expected = [[subset[i] for _, i in keys] for keys in sampler]
    got = [y_ids for y_ids in (x[:, 2, 0, 0].round().long().tolist() for x, _ in
                               ((x * 255, y) for x, y in single.epoch(2)))]
    assert got == expected and single.num_batches == 49 // 8
    # two ranks: each gets its half of every global batch; together, the single-process batch
    ranks = [DeviceLoader(arrays, device="cpu", batch_size=8, seed=5, indices=subset, rank=r, world=2) for r in (0, 1)]
    halves = [[(x[:, 2, 0, 0] * 255).round().long().tolist() for x, _ in loader.epoch(2)] for loader in ranks]
    assert [a + b for a, b in zip(*halves)] == expected
    # resuming at batch 3 yields exactly the remaining batches
    assert [(x[:, 2, 0, 0] * 255).round().long().tolist() for x, _ in single.epoch(2, start_batch=3)] == expected[3:]
    # labels travel with their images
    x, y = next(single.epoch(0))
    assert torch.equal(y, arrays.labels[(x[:, 2, 0, 0] * 255).round().long()])


def test_augmented_batches_are_a_pure_function_of_the_step_generators():
    loader = DeviceLoader(_arrays(64), device="cpu", batch_size=16, seed=0, augment="crop_flip")
    gens = lambda: (torch.Generator().manual_seed(100 + s) for s in range(10))  # noqa: E731
    a = [x for x, _ in loader.epoch(1, 0, gens())]
    b = [x for x, _ in loader.epoch(1, 0, gens())]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="generator per call"):
        next(loader.epoch(1))
    last = DeviceLoader(_arrays(64), device="cpu", batch_size=16, seed=0, augment="crop_flip", channels_last=True)
    x, _ = next(last.epoch(1, 0, gens()))
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, a[0])


def test_in_order_covers_every_item_once_across_ranks():
    arrays = _arrays(23)
    seen = []
    for r in range(3):
        loader = DeviceLoader(arrays, device="cpu", batch_size=3, seed=0, rank=r, world=3)
        seen += [i for x, _ in loader.in_order(4) for i in (x[:, 2, 0, 0] * 255).round().long().tolist()]
    assert sorted(seen) == list(range(23))
