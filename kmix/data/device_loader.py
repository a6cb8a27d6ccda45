"""The device-resident input pipeline: the uint8 set lives on the training device, each step indexes
it with the epoch's permutation and augments the batch with batched tensor ops (per-sample random
parameters), then converts to float — no per-image Python, no worker processes.

The order is `epoch_permutation(n, seed, epoch)` (the same rule as the worker pipeline) and the
augmentation parameters of a step come from a generator the caller seeds per (seed, rank, step),
so a run resumed mid-epoch replays the remaining batches bit for bit. Parameters are drawn on the
CPU and moved once per step, so CPU and CUDA runs see the same crops.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from kmix.data.arrays import DEVICE_AUGMENTS
from kmix.data.cache import ImageArrays
from kmix.data.order import batches_per_epoch, check_keep_last, epoch_permutation

CIFAR_PAD = 4
RRC_SCALE = (0.08, 1.0)  # torchvision RandomResizedCrop defaults
RRC_RATIO = (3 / 4, 4 / 3)
RRC_ATTEMPTS = 10


def to_float(images_nhwc: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1], exactly as torchvision's ToDtype(scale=True)."""
    x = TF.to_dtype(images_nhwc.permute(0, 3, 1, 2), torch.float32, scale=True)  # keeps the NHWC strides
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = CIFAR_PAD) -> torch.Tensor:
    """Per-sample random crop (zero padding `pad`, offsets uniform in [0, 2*pad]) + horizontal flip
    (p = 1/2) of a uint8 batch (N, H, W, C), as torchvision's RandomCrop(padding) + RandomHorizontalFlip;
    one gather does both."""
    n, h, w, _ = images.shape
    params = torch.cat([torch.randint(0, 2 * pad + 1, (n, 2), generator=generator),
                        (torch.rand(n, 1, generator=generator) < 0.5).long()], 1).to(images.device)
    oy, ox, flip = params[:, 0:1], params[:, 1:2], params[:, 2:3].bool()
    padded = torch.nn.functional.pad(images, (0, 0, pad, pad, pad, pad))
    ar_h, ar_w = torch.arange(h, device=images.device), torch.arange(w, device=images.device)
    rows = oy + ar_h  # (n, h)
    cols = ox + torch.where(flip, w - 1 - ar_w, ar_w)  # (n, w)
    return padded[torch.arange(n, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def resized_crop_boxes(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Boxes (n, 4) as (x0, y0, x1, y1) drawn per sample like torchvision's RandomResizedCrop.get_params:
    up to 10 tries of scale ~ U(0.08, 1) of the area and log-uniform ratio in [3/4, 4/3]; the first
    that fits wins, else the centre crop with the ratio clamped."""
    area = height * width
    scale = torch.empty(n, RRC_ATTEMPTS, dtype=torch.float64).uniform_(*RRC_SCALE, generator=generator) * area
    log_r = torch.empty(n, RRC_ATTEMPTS, dtype=torch.float64).uniform_(
        math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), generator=generator)
    ratio = torch.exp(log_r)
    w = torch.round(torch.sqrt(scale * ratio))
    h = torch.round(torch.sqrt(scale / ratio))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.long().argmax(dim=1, keepdim=True)  # first fitting try (0 if none; then fallback below)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    y0 = torch.floor(u[:, 0] * (height - h + 1))
    x0 = torch.floor(u[:, 1] * (width - w + 1))
    # fallback: whole image with the ratio clamped into the range, centred
    in_ratio = width / height
    fw, fh = float(width), float(height)
    if in_ratio < RRC_RATIO[0]:
        fh = float(round(fw / RRC_RATIO[0]))
    elif in_ratio > RRC_RATIO[1]:
        fw = float(round(fh * RRC_RATIO[1]))
    any_ok = ok.any(dim=1)
    w, h = torch.where(any_ok, w, fw), torch.where(any_ok, h, fh)
    y0 = torch.where(any_ok, y0, float((height - fh) // 2))
    x0 = torch.where(any_ok, x0, float((width - fw) // 2))
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def resized_crop_flip(images: torch.Tensor, generator: torch.Generator, size: int | None = None) -> torch.Tensor:
    """Per-sample RandomResizedCrop(size) + horizontal flip of a uint8 batch (N, H, W, C) -> float (N, C, S, S).

    The crop is resampled bilinearly by `torchvision.ops.roi_align` (aligned, adaptive sampling: an
    average over the box, so large crops are not aliased)."""
    n, h, w, _ = images.shape
    size = size or h
    boxes = resized_crop_boxes(n, h, w, generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rois = torch.cat([torch.arange(n, dtype=torch.float64)[:, None], boxes], 1).float().to(images.device)
    x = roi_align(to_float(images), rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1,
                  aligned=True)
    flip = flip.to(images.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x)


class DeviceLoader:
    """One rank's batches of a uint8 set held on `device`: index by the epoch's permutation, augment, float.

    `indices` restricts the set (a `--subset` or the training part of a `--val-fraction` split);
    `augment` is 'crop_flip', 'resized_crop' or None. Global batch b of an epoch is
    order[b*B:(b+1)*B] (last partial batch dropped unless `keep_last`, which needs world = 1) and
    rank r takes the r-th B/world slice of it, exactly as `kmix.train.sampling.EpochBatchSampler`.
    """

    def __init__(self, arrays: ImageArrays, *, device: torch.device | str, batch_size: int, seed: int,
                 indices: Sequence[int] | torch.Tensor | None = None, augment: str | None = None,
                 rank: int = 0, world: int = 1, channels_last: bool = False, limit_batches: int | None = None,
                 keep_last: bool = False):
        if augment is not None and augment not in DEVICE_AUGMENTS:
            raise ValueError(f"augment must be one of {DEVICE_AUGMENTS} or None, got {augment!r}")
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
        check_keep_last(keep_last, world)
        self.device = torch.device(device)
        self.images = arrays.images.to(self.device).contiguous()
        self.labels = arrays.labels.to(self.device)
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        self.n = len(arrays) if self.indices is None else len(self.indices)
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.rank, self.world, self.channels_last = rank, world, channels_last
        self.num_batches = batches_per_epoch(self.n, batch_size, limit_batches, keep_last)

    def order(self, epoch: int) -> torch.Tensor:
        """Dataset indices in this epoch's order, on the device."""
        order = epoch_permutation(self.n, self.seed, epoch)
        return (order if self.indices is None else self.indices[order]).to(self.device)

    def batch(self, index: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(float images (n, C, H, W) in [0, 1], labels) for dataset indices `index` on the device."""
        raw = self.images[index]
        if self.augment == "crop_flip":
            raw = crop_flip(raw, generator)
        if self.augment == "resized_crop":
            x = resized_crop_flip(raw, generator)
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        else:
            x = to_float(raw, self.channels_last)
        return x, self.labels[index]

    def epoch(self, epoch: int, start_batch: int = 0, generators: Iterator[torch.Generator] | None = None, *,
              with_indices: bool = False, steps_per_call: int = 1) -> Iterator[tuple[torch.Tensor, ...]]:
        """This rank's batches (images, labels) of `epoch` from `start_batch` on; `generators` yields one
        seeded CPU generator per call (needed when augmenting). With `with_indices`, (images, labels,
        dataset indices on the device): per-sample records (training dynamics) need to know whom they saw.

        `steps_per_call` > 1 gathers and augments that many consecutive batches in one call (the last call
        of the epoch may hold fewer, and with `keep_last` ends with the partial batch): this rank's shares of
        the batches, concatenated in step order. On a
        GPU the per-call host overhead, not the arithmetic, bounds small batches; one call per S steps cuts it S-fold.
        """
        if self.augment is not None and generators is None:
            raise ValueError("an augmenting DeviceLoader needs one generator per call")
        if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int) or steps_per_call < 1:
            raise ValueError(f"steps_per_call must be an int >= 1, got {steps_per_call!r}")
        order = self.order(epoch)
        local = self.batch_size // self.world
        for b in range(start_batch, self.num_batches, steps_per_call):
            steps = min(steps_per_call, self.num_batches - b)
            block = order[b * self.batch_size:(b + steps) * self.batch_size]
            # a block shorter than its steps ends with the epoch's partial batch (keep_last: one process, no split)
            index = block if len(block) < steps * self.batch_size else \
                block.view(steps, self.world, local)[:, self.rank].reshape(-1)
            x, y = self.batch(index, next(generators) if generators is not None else None)
            yield (x, y, index) if with_indices else (x, y)

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every item of this rank's share (items rank, rank + world, ...) in order, unaugmented: evaluation."""
        index = torch.arange(self.rank, self.n, self.world)
        if self.indices is not None:
            index = self.indices[index]
        index = index.to(self.device)
        for lo in range(0, len(index), batch_size):
            i = index[lo:lo + batch_size]
            yield to_float(self.images[i], self.channels_last), self.labels[i]
