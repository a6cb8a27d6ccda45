"""Seeded inputs shared by the mixer tests: a CPU generator and an image batch of a given dtype and layout."""
from __future__ import annotations

import torch


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def batch(n, h, w, dtype=torch.float32, channels_last=False, seed=0) -> torch.Tensor:
    """n random 3-channel h x w images in [0, 1] (uint8: 0..255), contiguous or channels_last."""
    x = torch.rand(n, 3, h, w, generator=gen(seed))
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
