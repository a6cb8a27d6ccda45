"""Cross-entropy against soft targets, the loss for mixed labels."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SoftTargetCrossEntropy(nn.Module):
    """-(y * log_softmax(logits)).sum(-1), reduced by `reduction` ('mean', 'sum' or 'none')."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and soft targets {tuple(target.shape)} differ in shape")
        loss = -(target.to(torch.float32) * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        if self.reduction == "mean":
            return loss.mean()
        return loss.sum() if self.reduction == "sum" else loss
