"""Mixing inside a DataLoader's collate function (torchvision v2's recommended form)."""
from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import default_collate


class MixCollate:
    """`DataLoader(..., collate_fn=MixCollate(mix))`: collate a list of samples, then mix the batch."""

    def __init__(self, mix: Callable, collate: Callable[[list], Any] = default_collate):
        self.mix = mix
        self.collate = collate

    def __call__(self, batch: list) -> tuple:
        x, y, *rest = self.collate(batch)
        return self.mix(x, y, *rest)
