"""Data order as a pure function of (seed, epoch): exact mid-epoch resume and DDP sharding, shared by
the worker pipeline (`kmix.train.sampling`) and the device pipeline (`kmix.data.device_loader`)."""
from __future__ import annotations

import torch

_MIX = 0x9E3779B97F4A7C15  # 64-bit golden-ratio constant for mixing seeds


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so (seed, epoch, step) pairs never collide in practice."""
    h = 0
    for part in parts:
        h = (h ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * _MIX & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of n training items in `epoch` (same on every rank and after resume)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, 1))
    return torch.randperm(n, generator=gen)


def batches_per_epoch(n: int, batch_size: int, limit_batches: int | None = None) -> int:
    """Optimizer steps per epoch: full global batches only, optionally capped (for tests)."""
    full = n // batch_size
    return full if limit_batches is None else min(full, limit_batches)
