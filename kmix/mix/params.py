"""The value object passed from sampling to applying."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MixParams:
    """Per-sample mixing parameters for a batch of n images mixed K at a time.

    phi: (n, K) Dirichlet proportions (float64); index: (n, K) pool indices, column 0 the anchor;
    boxes: (n, K-1, 4) nested (y0, x0, y1, x1) boxes for CutMix-style mixing, None for Mixup.
    """

    phi: torch.Tensor
    index: torch.Tensor
    boxes: torch.Tensor | None = None
