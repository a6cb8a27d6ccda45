"""Checking a batch before mixing, and turning class indices into (smoothed) one-hot targets."""
from __future__ import annotations

import torch

_PIXEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)


def check_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, mask: torch.Tensor | None = None,
                allow_mask: bool = True, who: str = "mixer", check_range: bool = True) -> None:
    """Raise a ValueError/TypeError naming the argument when the batch cannot be mixed.

    `check_range=False` skips reading the label range (a host sync for CUDA labels), for callers
    whose labels were validated once with the dataset (the training loop)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who}: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in _PIXEL_DTYPES:
        raise TypeError(f"{who}: x must be a float or uint8 tensor, got dtype {x.dtype}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{who}: batch of {n} image(s): mixing needs at least 2 images per batch")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{who}: y must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() == 1:
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"{who}: class-index labels y must be an integer tensor, got dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"{who}: y has {y.shape[0]} labels but x has {n} images")
        lo, hi = torch.stack(torch.aminmax(y)).tolist() if check_range else (0, 0)  # one sync (CUDA labels)
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{who}: label {bad} out of range for num_classes={num_classes}")
    elif y.dim() == 2:
        if not y.is_floating_point():
            raise TypeError(f"{who}: soft labels y (N, num_classes) must be float, got dtype {y.dtype}")
        if tuple(y.shape) != (n, num_classes):
            raise ValueError(f"{who}: soft labels y must have shape ({n}, {num_classes}), got {tuple(y.shape)}")
    else:
        raise ValueError(f"{who}: y must be (N,) class indices or (N, num_classes) soft labels, "
                         f"got shape {tuple(y.shape)}")
    if mask is not None:
        if not allow_mask:
            raise ValueError(f"{who}: a segmentation mask cannot be mixed by blending pixels; "
                             "use DCutMix or SaliencyDCutMix for masks")
        if not isinstance(mask, torch.Tensor) or mask.dim() != 3 or tuple(mask.shape) != (n, *x.shape[-2:]):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"{who}: mask must have shape ({n}, {x.shape[-2]}, {x.shape[-1]}), got {shape}")


def soft_targets(y: torch.Tensor, num_classes: int, label_smoothing: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, num_classes) targets: smoothed one-hot rows for class indices; soft rows pass through."""
    if y.dim() == 2:
        return y.to(dtype)
    off = label_smoothing / num_classes
    out = torch.full((y.shape[0], num_classes), off, dtype=dtype, device=y.device)
    return out.scatter_(1, y.long()[:, None], 1.0 - label_smoothing + off)
