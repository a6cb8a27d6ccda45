"""Data order that is a pure function of (seed, epoch): exact mid-epoch resume and DDP sharding.

The training order of epoch e is a permutation drawn from a generator seeded with (seed, e), so
nothing about it has to be saved: a resumed run recomputes it and skips the batches already used.
Random augmentation is made reproducible the same way: item i of epoch e is loaded under a torch
RNG seeded with (seed, e, i), independently of workers, ranks and resumes.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from kmix.data.order import batches_per_epoch, check_keep_last, epoch_permutation  # noqa: F401 (re-exported)
from kmix.runs import Stream, seed_for


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's share of each global batch as keys (epoch, item index).

    Global batch b of the epoch is order[b*B:(b+1)*B] (last partial batch dropped unless `keep_last`,
    which needs world = 1); rank r of `world` gets the r-th contiguous slice of B/world items, so the
    union over ranks equals the single-process batch. `start_batch` skips batches already consumed
    (mid-epoch resume).
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start_batch: int = 0, limit_batches: int | None = None, keep_last: bool = False):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
        check_keep_last(keep_last, world)
        if n < batch_size and not keep_last:
            raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} images)")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.start_batch = rank, world, start_batch
        self.num_batches = batches_per_epoch(n, batch_size, limit_batches, keep_last)

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_permutation(self.n, self.seed, self.epoch).tolist()
        local = self.batch_size // self.world
        for b in range(self.start_batch, self.num_batches):
            lo = b * self.batch_size + self.rank * local
            yield [(self.epoch, i) for i in order[lo:lo + local]]


class SeededItems(Dataset):
    """Wraps a dataset so that key (epoch, i) loads item i under a torch RNG seeded by (seed, epoch, i).

    Torch-based random transforms (torchvision) then draw the same crop/flip for the same item in
    the same epoch whatever the worker count, rank or resume point; the caller's RNG is untouched.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for(Stream.ITEM, self.seed, epoch, index))
            return self.dataset[index]
