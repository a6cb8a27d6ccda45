"""Applying sampled mixing parameters to pixels, masks and labels (the shared, hot part).

DCutMix-style mixing is one source map per sample: pixel (h, w) of sample n comes from
`pool[index[n, slot]]` where `slot` is the depth of the deepest nested box holding (h, w). Because
the boxes are nested, that depth is min(row depth, column depth), so the map costs one pass, and one
gather moves the pixels. Label weights are the exact pixel counts of each slot.
"""
from __future__ import annotations

import torch


def _row_col_depth(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How many nested boxes span each row (n, H) and each column (n, W)."""
    ys = torch.arange(height, device=boxes.device)
    xs = torch.arange(width, device=boxes.device)
    y0, x0, y1, x1 = boxes.unbind(-1)  # each (n, K-1)
    row_depth = ((ys[None, :, None] >= y0[:, None, :]) & (ys[None, :, None] < y1[:, None, :])).sum(-1)
    col_depth = ((xs[None, :, None] >= x0[:, None, :]) & (xs[None, :, None] < x1[:, None, :])).sum(-1)
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
    levels = torch.arange(k, device=boxes.device)
    slot_table = torch.minimum(levels[None, :, None], col_depth[:, None, :])  # (n, K, W)
    src_table = index.gather(1, slot_table.reshape(n, -1)).reshape(n, k, width)
    return src_table.gather(1, row_depth[:, :, None].expand(n, height, width))


def slot_weights(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Exact pixel fraction of each slot (n, K), float64: area(box_{k-1}) - area(box_k), box_0 = image."""
    n = boxes.shape[0]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).to(torch.float64)
    full = torch.full((n, 1), float(height * width), dtype=torch.float64, device=boxes.device)
    outer = torch.cat([full, area], dim=1)
    inner = torch.cat([area, torch.zeros(n, 1, dtype=torch.float64, device=boxes.device)], dim=1)
    return (outer - inner) / (height * width)


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
                 mask: torch.Tensor | None = None):
    """Composite `pool[index[:, k]]` in nested boxes.

    Returns (mixed (n, C, H, W), weights (n, K)) — or (mixed, weights, mixed_mask) when a mask
    (M, H, W) aligned with `pool` is given; the mask is mixed with the same source map.
    """
    h, w = pool.shape[-2:]
    src = source_map(index.to(pool.device), boxes.to(pool.device), h, w)
    mixed = gather_pixels(pool, src)
    weights = slot_weights(boxes, h, w).to(pool.device)
    if mask is None:
        return mixed, weights
    mixed_mask = torch.gather(mask.reshape(mask.shape[0], h * w), 0, src.reshape(-1, h * w)).reshape(-1, h, w)
    return mixed, weights, mixed_mask


def apply_mixup(pool: torch.Tensor, index: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """x = sum_k phi_k pool[index[:, k]], computed in float32 (or the pool's float dtype).

    Works on flat rows (a view in either memory format) so each step is one row gather and one
    fused multiply-add. Integer input is rounded and clamped back to its dtype's range.
    """
    index = index.to(pool.device)
    work_dtype = pool.dtype if pool.is_floating_point() else torch.float32
    weights = phi.to(device=pool.device, dtype=work_dtype)
    channels_last = pool.is_contiguous(memory_format=torch.channels_last) and not pool.is_contiguous()
    view = pool.permute(0, 2, 3, 1) if channels_last else pool  # a contiguous view either way
    flat = view.reshape(pool.shape[0], -1)
    # advanced indexing, not index_select: the latter is ~20x slower for long rows on CPU (torch 2.14)
    out = flat[index[:, 0]].to(work_dtype).mul_(weights[:, 0, None])
    for k in range(1, index.shape[1]):
        out.addcmul_(flat[index[:, k]].to(work_dtype), weights[:, k, None])
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
    index = index.to(targets.device)
    weights = weights.to(device=targets.device, dtype=torch.float64)
    terms = targets[index].double().mul_(weights[:, :, None])  # (n, K, num_classes)
    out = terms[:, 0].clone()
    for k in range(1, terms.shape[1]):
        out.add_(terms[:, k])
    return out.to(targets.dtype)
