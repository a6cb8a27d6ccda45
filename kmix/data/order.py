"""Data order as a pure function of (seed, epoch): exact mid-epoch resume and DDP sharding, shared by
the worker pipeline (`kmix.train.sampling`) and the device pipeline (`kmix.data.device_loader`).

Global batch b of an epoch is order[b*B:(b+1)*B]; the last partial batch is dropped unless `keep_last`
(one process only: a partial global batch cannot be split evenly over ranks)."""
from __future__ import annotations

import torch

from kmix.runs import Stream, generator_for

def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of n training items in `epoch` (same on every rank and after resume)."""
    return torch.randperm(n, generator=generator_for(Stream.ORDER, seed, epoch))


def check_keep_last(keep_last: bool, world: int) -> None:
    """keep_last needs one process: a partial global batch cannot be split evenly over the ranks."""
    if keep_last and world > 1:
        raise ValueError(f"keep_last_batch needs a single process ({world} here): a partial global batch cannot be "
                         f"split evenly over the processes; drop --keep-last-batch under torchrun")


def batches_per_epoch(n: int, batch_size: int, limit_batches: int | None = None, keep_last: bool = False) -> int:
    """Optimizer steps per epoch, optionally capped (for tests): full global batches only, or with `keep_last`
    also the last partial batch, ceil(n / batch_size) (a DataLoader's drop_last=False). A partial batch of one
    image that would be trained on is refused (mixing needs partners; BatchNorm needs two images)."""
    steps = -(-n // batch_size) if keep_last else n // batch_size
    if limit_batches is not None:
        steps = min(steps, limit_batches)
    if keep_last and n % batch_size == 1 and steps * batch_size > n:
        raise ValueError(f"keep_last_batch: the last batch of each epoch would hold 1 image ({n} training images, "
                         f"batch_size {batch_size}), too few to mix; choose another batch_size or turn "
                         f"keep_last_batch off (which drops it)")
    return steps
