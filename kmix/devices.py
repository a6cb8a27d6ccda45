"""Picking the torch device from a user's `--device` value: one rule for every command."""
from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' -> CUDA when available, else CPU; a plain 'cuda' under torchrun -> this process's GPU.

    An invalid name, or CUDA requested on a machine without it, raises a ValueError naming the value.
    """
    if str(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} requested but CUDA is not available (use --device cpu)")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
        if device.index is not None:
            torch.cuda.set_device(device)
    return device
