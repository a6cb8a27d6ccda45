"""The mixers' per-call fast path: the same mix as `sample_params` + `apply`, in a dozen dispatched ops.

On a small batch the cost of a call is the number of torch ops it dispatches (host time, and on a
GPU one kernel launch each), not their size. A call `mixer(x, y)` with a CPU generator (the default,
also for CUDA batches) runs:

- the draws of `sampling.sample_packed`, same calls in the same order (so a seed gives the same mix
  as before and as `sample_params`), written with `out=` into per-thread buffers whose numpy views the
  host reads (`_scratch`);
- the arithmetic on them in numpy (`sampling.host_params`: index, boxes, exact slot weights), plus
  the row and column depth of the nested boxes, (n, H) and (n, W), and, for CPU labels, the soft
  labels (summed in slot order in float64, as `apply.mix_labels` does, so the same bits);
- pixels on the batch's device: slot = min(row depth, column depth) (one op on (n,1,H,1) x (n,1,1,W)
  views), the pool index of every pixel by one gather of the (n, K) partner table, the pixels by one
  gather (DCutMix); one gather of the K partner rows and one batched matmul with phi (DMixup). Large
  CPU images (>= BOX_COPY_MIN_PIXELS pixels) instead copy box regions, each output pixel once: a
  gather over a full per-pixel index map costs more than the copies there.

On another device DCutMix's index and depth tables travel as one packed int64 buffer (one copy, then views).
A mixer built with `compiled=True` runs the pixel step (after the same draws and host arithmetic) through
its own torch.compile'd functions (`compiled_pixels`; static shapes), except large CPU images under a cut
mixer, which keep the box copies (faster there than the compiled gather: 98 against 179 ms at 64x3x224x224).

Anything else (a generator on another device, subclasses that change sampling, inputs that need a
gradient) takes the reference path, `apply(x, soft_targets(y), sample_params(x))`.
"""
from __future__ import annotations

import threading
import types
import weakref
from collections import OrderedDict

import numpy as np
import torch

from kmix.mix.apply import apply_mixup, mix_labels
from kmix.mix.sampling import host_params
from kmix.mix.targets import soft_targets

BOX_COPY_MIN_PIXELS = 96 * 96  # CPU images at least this large are mixed by box copies, smaller by one gather
BMM_MAX_ELEMENTS = 1 << 24  # DMixup gathers the K partner rows at once when n*K*C*H*W is at most this

_local = threading.local()


def _scratch(key, make):
    """A per-thread cached object (buffers and their views) built by `make()` once per key: reused by
    every call with the same shapes, so a call creates no views; results never alias them."""
    cache = _local.__dict__.setdefault("cache", OrderedDict())
    got = cache.get(key)
    if got is None:
        if len(cache) >= 64:
            cache.popitem(last=False)  # the least recently used
        got = cache[key] = make()
    else:
        cache.move_to_end(key)
    return got


def _buffer(shape, dtype):
    """A CPU tensor and its numpy view."""
    t = torch.empty(shape, dtype=dtype)
    return t, t.numpy()


def draw(n: int, k: int, concentration: torch.Tensor, generator: torch.Generator | None, partners: str,
         uniform: bool):
    """The draws of `sample_packed` (Dirichlet, K-1 permutations, shifts, box positions), same calls in the
    same order, as numpy arrays: (phi, perms, shift or None, uniform or None). The last three live in
    per-thread buffers, valid until the next call."""
    phi = torch._sample_dirichlet(concentration, generator=generator).numpy()
    dtype = torch.get_default_dtype()
    (r, _), (vals, _), (perm_t, perm_np), (shift_t, shift_np), (uni_t, uni_np) = _scratch(
        ("draws", n, k, dtype), lambda: (_buffer((k - 1, n), dtype), _buffer((k - 1, n), dtype),
                                         _buffer((k - 1, n), torch.long), _buffer((k - 1, 1), torch.long),
                                         _buffer((n, k - 1, 2), torch.float64)))
    torch.rand((k - 1, n), generator=generator, out=r)
    torch.sort(r, dim=1, out=(vals, perm_t))  # what argsort(dim=1) returns
    shift = None
    if partners != "permutation":
        torch.randint(1, n, (k - 1, 1), generator=generator, out=shift_t)
        shift = shift_np
    u = None
    if uniform:
        uni_t.uniform_(generator=generator)  # torch.rand's draws, without rand(out=)'s resize_
        u = uni_np
    return phi, perm_np, shift, u


def depth_tables(boxes: np.ndarray, height: int, width: int, rows: np.ndarray, cols: np.ndarray) -> None:
    """Write how many nested boxes span each row (n, H) and each column (n, W) into `rows`, `cols`:
    depth(p) = #{k: start_k <= p} - #{k: end_k <= p}."""
    for out, size, start, end in ((rows, height, 0, 2), (cols, width, 1, 3)):
        pos = np.arange(size)
        np.subtract((boxes[:, :, start, None] <= pos).sum(1), (boxes[:, :, end, None] <= pos).sum(1), out=out)


def host_labels(cls: np.ndarray | None, soft: np.ndarray | None, index: np.ndarray, weights: np.ndarray,
                num_classes: int, label_smoothing: float) -> np.ndarray:
    """Soft labels (n, num_classes) float32 = sum_k weights[:, k] * targets[index[:, k]], added in slot order in
    float64 and rounded once: the same bits as `mix_labels(soft_targets(y), index, weights)`. `cls` (M,)
    class indices (one-hot targets, smoothed by `label_smoothing`), or `soft` (M, C) float32 targets."""
    n, k = index.shape
    out = np.zeros((n, num_classes))
    if soft is not None:
        for j in range(k):
            out += weights[:, j, None] * soft[index[:, j]].astype(np.float64)
        return out.astype(np.float32)
    picked = cls[index]  # (n, K) class of each slot
    rows = np.arange(n)
    if label_smoothing == 0.0:
        for j in range(k):  # 0 + w is w: the same sums as the dense one-hot terms
            out[rows, picked[:, j]] += weights[:, j]
        return out.astype(np.float32)
    off = np.float32(label_smoothing / num_classes)  # soft_targets' float32 values
    on = np.float32(1.0 - label_smoothing + label_smoothing / num_classes)
    for j in range(k):
        term = np.full((n, num_classes), float(off))
        term[rows, picked[:, j]] = float(on)
        out += weights[:, j, None] * term
    return out.astype(np.float32)


def _labels(mixer, y: torch.Tensor, y_np, index: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """The mixed soft labels on y's device: in numpy for CPU labels, else `mix_labels` on the device."""
    if y_np is not None:
        cls = y_np.astype(np.int64, copy=False) if y.dim() == 1 else None
        soft = None if cls is not None else soft_targets(y, mixer.num_classes).numpy()
        return torch.from_numpy(host_labels(cls, soft, index, weights, mixer.num_classes, mixer.label_smoothing))
    targets = soft_targets(y, mixer.num_classes, mixer.label_smoothing)
    return mix_labels(targets, torch.from_numpy(np.ascontiguousarray(index)), torch.from_numpy(weights.copy()))


def eligible(mixer, x: torch.Tensor, y: torch.Tensor, kind: str | None) -> bool:
    """Whether `mixer(x, y)` may take the fast path: `kind` not None (the mixer says its sampling and applying
    are the K-image mixers' own: KImageMix.fast_kind), a CPU (or default) generator, no gradient through x,
    labels as CPU tensors or on x's device."""
    if kind is None or not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        return False  # check_batch names a bad argument
    if mixer.generator is not None and mixer.generator.device.type != "cpu":
        return False
    return not x.requires_grad and y.device.type in ("cpu", x.device.type)


def check_label_range(y_np: np.ndarray, num_classes: int, who: str) -> None:
    """The label-range check of `check_batch`, on the host copy of CPU labels (no torch op)."""
    lo, hi = int(y_np.min()), int(y_np.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{who}: label {lo if lo < 0 else hi} out of range for num_classes={num_classes}")


def fast_mix(mixer, x: torch.Tensor, y: torch.Tensor, y_np, mask: torch.Tensor | None, kind: str):
    """`mixer(x, y[, mask])` once the coin said mix: the same values as `apply(x, soft_targets(y), sample_params(x))`.
    `kind` is "uniform" (box offsets uniform) or "saliency" (boxes centred on saliency peaks). With
    `mixer.compiled` the pixels come from the mixer's torch.compile'd functions (`compiled_pixels`)."""
    n, c, h, w = x.shape
    k = mixer.k
    conc = mixer._concentration(n, torch.device("cpu"))
    centred = kind == "saliency"
    peaks = None
    if centred:
        from kmix.mix.saliency import saliency_peaks_numpy

        peaks = saliency_peaks_numpy(x)
    phi, perms, shift, uniform = draw(n, k, conc, mixer.generator, mixer.partners,
                                      uniform=mixer.uses_boxes and not centred)
    compiled = compiled_pixels(mixer) if getattr(mixer, "compiled", False) else None
    if not mixer.uses_boxes:
        pack, views = host_params(phi, perms, shift, None, None)
        mixed = _mixup_pixels(x, views["index"], views["phi"], compiled)
        return mixed, _labels(mixer, y, y_np, views["index"], views["phi"])
    centers = (lambda index: peaks[index[:, 1:]]) if centred else None
    pack, views = host_params(phi, perms, shift, uniform, (h, w), centers)
    index, boxes, weights = views["index"], views["boxes"], views["weights"]
    labels = _labels(mixer, y, y_np, index, weights)
    if x.device.type == "cpu" and h * w >= BOX_COPY_MIN_PIXELS:  # also compiled: the fused gather is slower there
        out = paste_boxes(x, index, boxes, mask)
    else:
        out = _gather_pixels(x, index, boxes, mask, compiled)
    return (out[0], labels) + tuple(out[1:])


# --- pixels from the host tables, eager or compiled; DCutMix's in one int64 buffer, one copy to the device ---

def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def mixup_pixels(x: torch.Tensor, idx: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """x' = sum_k wts[:, 0, k] x[idx[:, k]], in wts' dtype, back to x's dtype and memory format (integers
    rounded and clamped). Eager: one gather of the K partner rows (n, K, D) and one batched matmul; compiled:
    the same sum as a reduction over K, which inductor fuses with the gather (no (n, K, D) intermediate)."""
    n, k = idx.shape
    m = x.shape[0]
    work = wts.dtype
    channels_last = _channels_last(x)
    view = x.permute(0, 2, 3, 1) if channels_last else x
    rows = view.reshape(m, -1)[idx]  # (n, K, D)
    if rows.dtype != work:
        rows = rows.to(work)
    if torch.compiler.is_compiling():
        out = (rows * wts.view(n, k, 1)).sum(1)
    else:
        out = torch.bmm(wts, rows)  # (n, 1, D)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        out = out.round_().clamp_(info.min, info.max).to(x.dtype)
    out = out.view(n, *view.shape[1:])
    return out.permute(0, 3, 1, 2) if channels_last else out


def cut_views(pack: torch.Tensor, n: int, k: int, height: int, width: int):
    """(partner table (n, K, H, W) expanded, row depth (n, 1, H, 1), column depth (n, 1, 1, W)): views of the
    flat int64 pack [index (n, K) | row depth (n, H) | column depth (n, W)]."""
    return (pack.as_strided((n, k, height, width), (k, 1, 0, 0), 0),
            pack.as_strided((n, 1, height, 1), (height, height, 1, 1), n * k),
            pack.as_strided((n, 1, 1, width), (width, width, width, 1), n * (k + height)))


def cut_pixels(x: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
               mask: torch.Tensor | None = None):
    """(mixed[, mixed mask]) by one per-pixel source map: slot = min(row depth, column depth), the source image
    by gathering the partner table at the slot, the pixels by one gather (x's memory format kept)."""
    n, k, h, w = table.shape
    c = x.shape[1]
    src = torch.gather(table, 1, torch.minimum(rows, cols))  # (n, 1, H, W), contiguous
    if _channels_last(x):
        pixel_index = src.as_strided((n, h, w, c), (h * w, w, 1, 0))
        mixed = torch.gather(x.permute(0, 2, 3, 1), 0, pixel_index).permute(0, 3, 1, 2)
    else:
        mixed = torch.gather(x, 0, src.expand(n, c, h, w))
    if mask is None:
        return (mixed,)
    return mixed, torch.gather(mask, 0, src.view(n, h, w))


def _cut_from_pack(x: torch.Tensor, pack: torch.Tensor, k: int, mask: torch.Tensor | None):
    n, _, h, w = x.shape
    return cut_pixels(x, *cut_views(pack, n, k, h, w), mask)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # mixer -> {"mixup": fn, "cut": fn}


def _own_copy(fn):
    """fn with its own code object: dynamo keeps its compiled graphs (and counts recompiles) per code object, so
    each mixer gets its own cache and recompile limit instead of sharing one with every other mixer."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def compiled_pixels(mixer) -> dict:
    """The mixer's torch.compile'd pixel functions (`mixup_pixels`; `cut_pixels` from the pack), built on first
    use: static shapes (dynamic=False), one graph (fullgraph=True). A new batch shape, dtype, memory format or
    device compiles again; past torch._dynamo.config.recompile_limit (8) graphs per function and mixer, dynamo
    runs the function eagerly (the same code, so the same values)."""
    fns = _COMPILED.get(mixer)
    if fns is None:
        fns = _COMPILED[mixer] = {name: torch.compile(_own_copy(fn), dynamic=False, fullgraph=True)
                                  for name, fn in (("mixup", mixup_pixels), ("cut", _cut_from_pack))}
    return fns


def _mixup_pixels(x: torch.Tensor, index: np.ndarray, phi: np.ndarray, compiled: dict | None = None) -> torch.Tensor:
    """DMixup's pixels from the host index and phi (rounded once to the work dtype): the K partner rows' weighted
    sum (`mixup_pixels`). Two copies to a device, not one packed: the int64 index and the float weights would
    need a dtype view (two more ops than the copy saves). Eager batches too large to gather at once, and half
    precision, take apply_mixup's K multiply-adds."""
    n, k = index.shape
    m, c, h, w = x.shape
    work = x.dtype if x.is_floating_point() else torch.float32
    if work not in (torch.float32, torch.float64) or (compiled is None and n * k * c * h * w > BMM_MAX_ELEMENTS):
        return apply_mixup(x, torch.from_numpy(np.ascontiguousarray(index)), torch.from_numpy(phi.copy()))
    (idx_t, idx_np), (w_t, w_np) = _scratch(("mixup", n, k, work), lambda: (_buffer((n, k), torch.long),
                                                                            _buffer((n, 1, k), work)))
    idx_np[...] = index
    w_np[:, 0] = phi  # the same rounding as phi.to(work)
    if x.device.type != "cpu":
        idx_t, w_t = idx_t.to(x.device), w_t.to(x.device)
    return (mixup_pixels if compiled is None else compiled["mixup"])(x, idx_t, w_t)


def _gather_pixels(x: torch.Tensor, index: np.ndarray, boxes: np.ndarray, mask: torch.Tensor | None,
                   compiled: dict | None = None):
    """(mixed[, mixed mask]) by one per-pixel source map (`cut_pixels`), from the partner index and the nested
    boxes' row and column depth, packed into one int64 buffer: one copy to x's device, then views. On the CPU the
    views and the map's buffers are built once per shape and the ops write into them (no op creates a view)."""
    n, k = index.shape
    m, c, h, w = x.shape
    channels_last = _channels_last(x)
    on_cpu = x.device.type == "cpu"

    def make():
        pack_t, pack_np = _buffer((n * (k + h + w),), torch.long)
        host = (pack_np[:n * k].reshape(n, k), pack_np[n * k:n * (k + h)].reshape(n, h),
                pack_np[n * (k + h):].reshape(n, w))
        views = None
        if on_cpu:
            slot, src = torch.empty(n, 1, h, w, dtype=torch.long), torch.empty(n, h, w, dtype=torch.long)
            pixel_index = (src.view(n, h, w, 1).expand(n, h, w, c) if channels_last
                           else src.view(n, 1, h, w).expand(n, c, h, w))
            views = (*cut_views(pack_t, n, k, h, w), slot, src.view(n, 1, h, w), src, pixel_index)
        return pack_t, host, views

    pack_t, (idx_np, rows_np, cols_np), views = _scratch(("cut", n, k, c, h, w, channels_last, on_cpu), make)
    idx_np[...] = index
    depth_tables(boxes, h, w, rows_np, cols_np)
    if compiled is not None:
        return compiled["cut"](x, pack_t if on_cpu else pack_t.to(x.device), k, mask)
    if not on_cpu:
        return cut_pixels(x, *cut_views(pack_t.to(x.device), n, k, h, w), mask)
    table, rows, cols, slot, src4, src, pixel_index = views
    torch.minimum(rows, cols, out=slot)
    torch.gather(table, 1, slot, out=src4)
    if channels_last:
        mixed = torch.gather(x.permute(0, 2, 3, 1), 0, pixel_index).permute(0, 3, 1, 2)
    else:
        mixed = torch.gather(x, 0, pixel_index)
    if mask is None:
        return (mixed,)
    return mixed, torch.gather(mask, 0, src)


def ring_rects(index: np.ndarray, boxes: np.ndarray, height: int, width: int):
    """The regions of each slot as rectangles, each pixel in exactly one: slot k < K-1 is box k minus
    box k+1 (four bands: top, bottom, left, right), slot K-1 the last box. Returns (sample, source image,
    y0, x0, y1, x1) arrays of the non-empty rectangles."""
    n, k = index.shape
    outer = np.empty((n, k + 1, 4), dtype=np.int64)  # box 0 = image, boxes 1..K-1, box K = empty
    outer[:, 0] = (0, 0, height, width)
    outer[:, 1:k] = boxes
    outer[:, k] = outer[:, k - 1]
    outer[:, k, 2:] = outer[:, k, :2]  # empty, at the last box's corner
    a0, b0, a1, b1 = np.moveaxis(outer[:, :k], 2, 0)  # (n, K): the slot's box
    c0, d0, c1, d1 = np.moveaxis(outer[:, 1:], 2, 0)  # the next (inner) box
    rects = np.stack([np.stack(r, -1) for r in (
        (a0, b0, c0, b1),  # top band
        (c1, b0, a1, b1),  # bottom band
        (c0, b0, c1, d0),  # left of the inner box
        (c0, d1, c1, b1),  # right of the inner box
    )], 2)  # (n, K, 4 bands, 4)
    sample = np.broadcast_to(np.arange(n)[:, None, None], rects.shape[:3])
    source = np.broadcast_to(index[:, :, None], rects.shape[:3])
    keep = (rects[..., 2] > rects[..., 0]) & (rects[..., 3] > rects[..., 1])
    r = rects[keep]
    return sample[keep], source[keep], r[:, 0], r[:, 1], r[:, 2], r[:, 3]


def _numpy_of(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor of any dtype (bfloat16 through its int16 bits)."""
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()


def paste_boxes(x: torch.Tensor, index: np.ndarray, boxes: np.ndarray, mask: torch.Tensor | None = None):
    """(mixed[, mixed mask]) on the CPU by copying each slot's region from its source image: every output
    pixel is written once, so the cost is one pass over the batch plus a few microseconds per rectangle."""
    n = index.shape[0]
    h, w = x.shape[-2:]
    out = torch.empty((n, *x.shape[1:]), dtype=x.dtype).contiguous(
        memory_format=torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                              and not x.is_contiguous()) else torch.contiguous_format)
    src, dst = _numpy_of(x), _numpy_of(out)
    rects = ring_rects(index, boxes, h, w)
    cols = [a.tolist() for a in rects]
    for i, j, y0, x0, y1, x1 in zip(*cols):
        dst[i, :, y0:y1, x0:x1] = src[j, :, y0:y1, x0:x1]
    if mask is None:
        return (out,)
    mixed_mask = torch.empty((n, h, w), dtype=mask.dtype)
    msrc, mdst = _numpy_of(mask), _numpy_of(mixed_mask)
    for i, j, y0, x0, y1, x1 in zip(*cols):
        mdst[i, y0:y1, x0:x1] = msrc[j, y0:y1, x0:x1]
    return out, mixed_mask
