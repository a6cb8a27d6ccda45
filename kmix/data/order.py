"""Data order as a pure function of (seed, epoch): exact mid-epoch resume and DDP sharding, shared by
the worker pipeline (`kmix.train.sampling`) and the device pipeline (`kmix.data.device_loader`)."""
from __future__ import annotations

import torch

from kmix.runs import Stream, generator_for

def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of n training items in `epoch` (same on every rank and after resume)."""
    return torch.randperm(n, generator=generator_for(Stream.ORDER, seed, epoch))


def batches_per_epoch(n: int, batch_size: int, limit_batches: int | None = None) -> int:
    """Optimizer steps per epoch: full global batches only, optionally capped (for tests)."""
    full = n // batch_size
    return full if limit_batches is None else min(full, limit_batches)
