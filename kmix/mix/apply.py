"""Applying sampled mixing parameters to pixels, masks and labels (the shared, hot part).

DCutMix-style mixing is one source map per sample: pixel (h, w) of sample n comes from
`pool[index[n, slot]]` where `slot` is the depth of the deepest nested box holding (h, w). Because
the boxes are nested, that depth is min(row depth, column depth), so the map costs one pass, and one
gather moves the pixels. Label weights are the exact pixel counts of each slot.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=64)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    """Cached arange(n) (never written to)."""
    return torch.arange(n, device=device)


@lru_cache(maxsize=64)
def _levels(k: int, device: torch.device) -> torch.Tensor:
    """Cached (K, 1) column 0..K-1 (never written to)."""
    return torch.arange(k, device=device).view(k, 1)


def _on(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """t on `device`, without dispatching a no-op `.to` when it is there already."""
    return t if t.device == device else t.to(device)


def _row_col_depth(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How many nested boxes span each row (n, H) and each column (n, W).

    depth(p) = #{k: start_k <= p} - #{k: end_k <= p}, for rows and columns at once: one comparison
    of the (n, K-1, 2, 2) box corners with the positions 0..max(H, W)-1, one sum over the boxes.
    """
    n, km1, _ = boxes.shape
    size = max(height, width)
    counts = (boxes.view(n, km1, 2, 2, 1) <= _arange(size, boxes.device)).sum(1)  # (n, start/end, y/x, size)
    starts, ends = counts.unbind(1)
    row_depth, col_depth = (starts - ends).unbind(1)
    if height < size:
        row_depth = row_depth[:, :height]
    if width < size:
        col_depth = col_depth[:, :width]
    return row_depth, col_depth


def box_depth_map(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Slot map (n, H, W) int64: the number of nested boxes containing each pixel (0 = outside all)."""
    row_depth, col_depth = _row_col_depth(boxes, height, width)
    return torch.minimum(row_depth[:, :, None], col_depth[:, None, :])


def source_map(index: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pool index of the source of every pixel, (n, H, W) int64.

    Built as one row-gather of a small (n, K, W) table: for rows of depth r, the column w takes
    slot min(r, column depth(w)).
    """
    n, k = index.shape
    row_depth, col_depth = _row_col_depth(boxes, height, width)
    slot_table = torch.minimum(_levels(k, boxes.device), col_depth.unsqueeze(1))  # (n, K, W)
    src_table = index.gather(1, slot_table.view(n, k * width)).view(n, k, width)
    return src_table.gather(1, row_depth.unsqueeze(2).expand(n, height, width))


def slot_weights(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Exact pixel fraction of each slot (n, K), float64: area(box_{k-1}) - area(box_k), box_0 = image."""
    n, km1, _ = boxes.shape
    starts, ends = boxes.view(n, km1, 2, 2).unbind(2)
    neg_area = F.pad((ends - starts).prod(-1).to(torch.float64).neg_(), (1, 1))  # (n, K+1): 0, -areas, 0
    neg_area[:, 0] = -float(height * width)
    # (-area_k) - (-area_{k-1}): exact integers, +0 for an empty slot
    return torch.diff(neg_area, dim=1) / (height * width)


def gather_pixels(pool: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """out[n, :, h, w] = pool[src[n, h, w], :, h, w], keeping pool's dtype and memory format."""
    m, c, h, w = pool.shape
    n = src.shape[0]
    if pool.is_contiguous(memory_format=torch.channels_last) and not pool.is_contiguous():
        flat = pool.permute(0, 2, 3, 1).reshape(m, h * w, c)
        out = torch.gather(flat, 0, src.reshape(n, h * w, 1).expand(n, h * w, c))
        return out.reshape(n, h, w, c).permute(0, 3, 1, 2)
    flat = pool.reshape(m, c, h * w)
    out = torch.gather(flat, 0, src.reshape(n, 1, h * w).expand(n, c, h * w))
    return out.reshape(n, c, h, w)


def apply_cutmix(pool: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor,
                 mask: torch.Tensor | None = None, weights: torch.Tensor | None = None):
    """Composite `pool[index[:, k]]` in nested boxes.

    Returns (mixed (n, C, H, W), weights (n, K)) — or (mixed, weights, mixed_mask) when a mask
    (M, H, W) aligned with `pool` is given; the mask is mixed with the same source map. `weights`,
    when given, are the slot weights already known (`MixParams.weights`), else `slot_weights(boxes)`.
    """
    h, w = pool.shape[-2:]
    if weights is None:
        weights = slot_weights(boxes, h, w)
    src = source_map(_on(index, pool.device), _on(boxes, pool.device), h, w)
    mixed = gather_pixels(pool, src)
    weights = _on(weights, pool.device)
    if mask is None:
        return mixed, weights
    mixed_mask = torch.gather(mask.reshape(mask.shape[0], h * w), 0, src.view(-1, h * w)).view(-1, h, w)
    return mixed, weights, mixed_mask


def apply_mixup(pool: torch.Tensor, index: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """x = sum_k phi_k pool[index[:, k]], computed in float32 (or the pool's float dtype).

    Works on flat rows (a view in either memory format) so each step is one row gather and one
    fused multiply-add. Integer input is rounded and clamped back to its dtype's range.
    """
    index = _on(index, pool.device)
    work_dtype = pool.dtype if pool.is_floating_point() else torch.float32
    weights = phi.to(device=pool.device, dtype=work_dtype).unsqueeze(-1).unbind(1)  # K x (n, 1)
    channels_last = pool.is_contiguous(memory_format=torch.channels_last) and not pool.is_contiguous()
    view = pool.permute(0, 2, 3, 1) if channels_last else pool  # a contiguous view either way
    flat = view.reshape(pool.shape[0], -1)
    convert = flat.dtype != work_dtype
    # advanced indexing, not index_select: the latter is ~20x slower for long rows on CPU (torch 2.14)
    rows = index.unbind(1)
    out = flat[rows[0]]
    out = (out.to(work_dtype) if convert else out).mul_(weights[0])
    for k in range(1, len(rows)):
        term = flat[rows[k]]
        out.addcmul_(term.to(work_dtype) if convert else term, weights[k])
    if not pool.is_floating_point():
        info = torch.iinfo(pool.dtype)
        out = out.round_().clamp_(info.min, info.max).to(pool.dtype)
    out = out.reshape(index.shape[0], *view.shape[1:])
    return out.permute(0, 3, 1, 2) if channels_last else out


def mix_labels(targets: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Soft labels (n, num_classes) = sum_k weights[:, k] * targets[index[:, k]] (targets (M, num_classes)).

    Summed in float64 and rounded once to the targets' dtype, so that an image filling two slots
    still gets exactly its pixel fraction. The K terms are added one by one in slot order (not by a
    reduction kernel, whose order differs between CPU and CUDA), so both devices agree bit for bit.
    """
    index = _on(index, targets.device)
    weights = _on(weights, targets.device)
    if weights.dtype != torch.float64:
        weights = weights.double()
    n, k = index.shape
    flat_index = index.reshape(-1)
    if targets.shape[0] <= flat_index.shape[0]:  # fewer rows to convert before the gather than after
        terms = targets.double().index_select(0, flat_index).view(n, k, -1)  # (n, K, num_classes)
    else:
        terms = targets.index_select(0, flat_index).view(n, k, -1).double()
    terms = terms.mul_(weights.unsqueeze(-1)).unbind(1)  # (not a float32 x float64 mul: a slow path on CPU)
    out = terms[0] + terms[1] if k > 1 else terms[0].clone()
    for term in terms[2:]:
        out.add_(term)
    return out.to(targets.dtype)
