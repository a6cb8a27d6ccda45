"""An epoch's training batches on the device, from either pipeline, behind one method:
`epoch(epoch, start_batch, first_step)` yields (images, labels, indices into the full training set).

Both are pure functions of (seed, epoch[, step or item]), so a resumed run gets the same batches
(kmix.data.order). The device pipeline yields `steps_per_call` batches per item (one call of the
augmentation and the mixer), the workers pipeline one.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from kmix.runs import Stream, generator_for
from kmix.train.data_setup import TrainData
from kmix.train.sampling import EpochBatchSampler, SeededItems

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DeviceBatches:
    """The device-resident pipeline: item c of an epoch is augmented under a generator seeded by the global
    step of its first batch, `first_step + c * steps_per_call`."""

    def __init__(self, data: TrainData, seed: int, rank: int, steps_per_call: int):
        self.loader, self.seed, self.rank, self.per = data.train_loader, seed, rank, steps_per_call

    def epoch(self, epoch: int, start_batch: int, first_step: int) -> Iterator[Batch]:
        gens = (generator_for(Stream.DEVICE_AUGMENT, self.seed, self.rank, step)
                for step in itertools.count(first_step, self.per))
        yield from self.loader.epoch(epoch, start_batch, gens, with_indices=True, steps_per_call=self.per)


class WorkerBatches:
    """DataLoader workers: each item loaded under a generator seeded by (seed, epoch, item) (SeededItems),
    batches in the seeded order of EpochBatchSampler, moved to the device (indices stay on the CPU)."""

    def __init__(self, data: TrainData, config, device: torch.device, rank: int, world: int):
        self.data, self.config, self.device, self.rank, self.world = data, config, device, rank, world
        indices = data.train_indices  # position in train_set -> index in the full training set
        self.full_index = None if indices is None else torch.as_tensor(indices, dtype=torch.int64)

    def epoch(self, epoch: int, start_batch: int, first_step: int) -> Iterator[Batch]:
        cfg, device = self.config, self.device
        sampler = EpochBatchSampler(len(self.data.train_set), cfg.batch_size, seed=cfg.seed, epoch=epoch,
                                    rank=self.rank, world=self.world, start_batch=start_batch,
                                    limit_batches=cfg.limit_train_batches, keep_last=cfg.keep_last_batch)
        # the loader's own generator keeps worker seeding from touching the global torch RNG
        gen = generator_for(Stream.LOADER, cfg.seed, epoch, start_batch)
        loader = DataLoader(SeededItems(self.data.train_set, cfg.seed), batch_sampler=sampler,
                            num_workers=cfg.workers, pin_memory=device.type == "cuda", generator=gen)
        # the sampler is a pure function of (seed, epoch, rank): iterated again beside the loader it names
        # the items of each batch (the loader keeps the sampler's batch order, also with workers)
        for keys, (x, y) in zip(sampler, loader, strict=True):
            index = torch.tensor([i for _, i in keys], dtype=torch.int64)
            if self.full_index is not None:
                index = self.full_index[index]
            x = x.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.as_tensor(y).to(device, non_blocking=True), index


def train_batches(data: TrainData, config, device: torch.device, rank: int, world: int,
                  steps_per_call: int) -> DeviceBatches | WorkerBatches:
    """The pipeline `data` was built for (data.loader)."""
    if data.train_loader is not None:
        return DeviceBatches(data, config.seed, rank, steps_per_call)
    return WorkerBatches(data, config, device, rank, world)
