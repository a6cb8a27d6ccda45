"""Sampling of mixing parameters (proportions, partners, nested boxes), kept apart from applying them.

Every function takes an optional `torch.Generator` and draws on the generator's device (CPU by
default); the results are tiny (N x K) and are moved to the batch's device by the caller.

The mixers call `sample_packed`, which draws exactly what the public functions below draw, in the
same order (Dirichlet, partner permutations, partner shifts, box positions), but writes everything
into one int64 tensor (index, phi and the slot weights as float64 bit patterns, boxes), so that
moving the parameters to the batch's device is one copy. The box arithmetic runs on one float64
(n, K+1, 2) table of nested sides (row 0 the image, row K an empty box), in as few ops as possible:
on a tiny batch the cost of a call is the number of ops, not their size. With a CPU generator
(the usual case, also for CUDA batches) the draws are torch's and the arithmetic on them runs in
numpy on the same memory (`_host_arithmetic`), where an op on a few hundred numbers costs about a
microsecond instead of several; it is the same IEEE float64 arithmetic, op for op (tested bit for
bit against the torch code, which runs for generators on other devices).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from kmix.mix.params import MixParams, pack_views, packed_width

PARTNERS = ("derangement", "permutation")  # how partner columns are drawn (see sample_partners)


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


@lru_cache(maxsize=64)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    """Cached arange(n) (never written to)."""
    return torch.arange(n, device=device)


@lru_cache(maxsize=64)
def _side_template(height: int, width: int, k: int, device: torch.device) -> torch.Tensor:
    """(K+1, 2) float64: row 0 the image sides, rows 1..K zero (cached, never written to)."""
    t = torch.zeros(k + 1, 2, dtype=torch.float64, device=device)
    t[0, 0], t[0, 1] = float(height), float(width)
    return t


def sample_dirichlet(n: int, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Proportions phi (n, K) ~ Dirichlet(alpha), float64, rows summing to 1.

    Uses torch's own Dirichlet kernel (`torch._sample_dirichlet`, the one behind
    torch.distributions.Dirichlet), which, unlike `Dirichlet.sample`, takes a generator. float64:
    with small alpha many proportions lie within 1e-7 of 1, where float32 would round them to 1.
    `alpha` is (K,), or the (n, K) contiguous float64 concentration on the generator's device
    (what the mixers cache, to skip rebuilding it on every call).
    """
    device = _device_of(generator)
    if alpha.dim() == 2:  # already (n, K); .to is a no-op when it is float64 on the generator's device
        # (a generator's device reads 'cuda' where tensors say 'cuda:0': compare by .to, not by ==)
        concentration = alpha.to(device=device, dtype=torch.float64).contiguous()
    else:
        concentration = alpha.to(device=device, dtype=torch.float64).reshape(1, -1).expand(n, -1).contiguous()
    return torch._sample_dirichlet(concentration, generator=generator)


def _check_partners(partners: str) -> None:
    if partners not in PARTNERS:
        raise ValueError(f"partners must be one of {', '.join(PARTNERS)}, got {partners!r}")


def _draw_partner_perms(n: int, k: int, generator: torch.Generator | None, partners: str = "derangement"):
    """The partner draws: K-1 random permutations of the batch (K-1, n), and for derangements K-1 shifts
    in [1, n) (None for plain permutations)."""
    device = _device_of(generator)
    perms = torch.rand(k - 1, n, device=device, generator=generator).argsort(dim=1)  # (K-1, n)
    if partners == "permutation":
        return perms, None
    shift = torch.randint(1, n, (k - 1, 1), device=device, generator=generator)
    return perms, shift


def _write_partners(out: torch.Tensor, perms: torch.Tensor, shift: torch.Tensor | None) -> None:
    """Write partner indices into `out` (n, K), any strides: see `sample_partners`."""
    n = out.shape[0]
    ar = _arange(n, out.device)
    cols = out.T  # (K, n) view
    cols[0] = ar
    if shift is None:  # plain permutations
        cols[1:] = perms
        return
    cols[1:].scatter_(1, perms, perms.gather(1, (ar + shift).remainder_(n)))  # cols[j, perm[i]] = perm[i + s]


def sample_partners(n: int, k: int, generator: torch.Generator | None = None,
                    partners: str = "derangement") -> torch.Tensor:
    """Partner indices (n, K): column 0 is the anchor itself, columns 1..K-1 random permutations.

    "derangement" (default): each partner column is a random permutation of the batch without fixed
    points (a random permutation composed with a random non-zero cyclic shift), so a partner is never
    the anchor. "permutation": a plain random permutation (the official DCutMix code's
    `torch.randperm`), so a slot holds the anchor itself with probability 1/n.
    """
    _check_partners(partners)
    out = torch.empty(n, k, dtype=torch.long, device=_device_of(generator))
    _write_partners(out, *_draw_partner_perms(n, k, generator, partners))
    return out


def _side_scales(phi: torch.Tensor) -> torch.Tensor:
    """sqrt(1 - v_k) (n, K) from stick-breaking fractions v; column K-1 is not used."""
    remaining = torch.cumsum(phi, dim=1).neg_().add_(1.0).add_(phi)  # 1 - sum_{j<k} phi_j = prod_{j<k}(1 - v_j)
    v = phi / remaining.clamp_min_(1e-12)
    return v.clamp_(0.0, 1.0).neg_().add_(1.0).sqrt_()


def stick_breaking(phi: torch.Tensor) -> torch.Tensor:
    """Stick-breaking fractions v (n, K-1): v_1 = phi_1, v_k = phi_k / prod_{j<k} (1 - v_j)."""
    remaining = 1.0 - torch.cumsum(phi, dim=1) + phi  # 1 - sum_{j<k} phi_j = prod_{j<k}(1 - v_j)
    v = phi[:, :-1] / remaining[:, :-1].clamp_min(1e-12)
    return v.clamp(0.0, 1.0)


def _side_table(phi: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nested box sides (n, K+1, 2) float64 (exact integers): row 0 the image, rows 1..K-1 the boxes,
    row K zero. side_k = round(side_{k-1} * sqrt(1 - v_k)), rounded from the rounded parent side.

    (No min with the parent is needed: the scale is in [0, 1], so the rounded product never
    exceeds the integer parent side.)
    """
    phi = phi.to(torch.float64)
    n, k = phi.shape
    scales = _side_scales(phi).unsqueeze(-1).unbind(1)  # K x (n, 1)
    table = torch.empty(n, k + 1, 2, dtype=torch.float64, device=phi.device)
    table.copy_(_side_template(height, width, k, phi.device))
    rows = table.unbind(1)
    for j in range(1, k):  # sequential: each side is rounded from the rounded parent side
        torch.mul(rows[j - 1], scales[j - 1], out=rows[j]).round_()
    return table


def box_sizes(phi: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nested box sizes (n, K-1, 2) as (h, w): side_k = round(side_{k-1} * sqrt(1 - v_k))."""
    k = phi.shape[1]
    return _side_table(phi, height, width)[:, 1:k].long()


def _slot_weights_from_table(table: torch.Tensor, height: int, width: int, out: torch.Tensor | None = None):
    """Exact pixel fraction of each slot (n, K) float64 from the side table: the same values (bit for
    bit) as `slot_weights(boxes)`: (area_{k-1} - area_k) / (H * W), the difference taken as
    (-area_k) - (-area_{k-1}) (exact integers, +0 for an empty slot), then the same one division."""
    return torch.div(torch.diff(table.prod(-1).neg_(), dim=1), height * width, out=out)


def _uniform_tops(table: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Top-left corners (n, K-1, 2) float64 of boxes placed uniformly inside their parents."""
    k = table.shape[1] - 1
    slack = torch.diff(table[:, :k].neg(), dim=1)  # parent - size: the room to move
    room = slack.add(1.0)
    if uniform.dtype != torch.float64:  # computed in the uniform's dtype, as the product always was
        room = room.to(uniform.dtype)
    offsets = torch.minimum(room.mul_(uniform).floor_(), slack)
    return offsets.cumsum_(dim=1)


def _centred_tops(table: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Top-left corners (n, K-1, 2) float64 of boxes centred on `centers`, clamped inside their parents."""
    n, k = table.shape[0], table.shape[1] - 1
    sizes = table[:, 1:k]
    slack = (table[:, :k - 1] - sizes).unbind(1)
    wanted = (centers.to(torch.float64) - sizes.mul(0.5).floor_()).unbind(1)  # centre - size // 2
    tops = torch.empty_like(sizes)
    top_k = tops.unbind(1)
    top = torch.zeros(n, 2, dtype=torch.float64, device=table.device)
    for j in range(k - 1):  # clamping makes each top depend on the clamped parent's
        top = torch.add(top, torch.minimum((wanted[j] - top).clamp_min_(0.0), slack[j]), out=top_k[j])
    return tops


def _boxes_from(table: torch.Tensor, tops: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """(n, K-1, 4) int64 (y0, x0, y1, x1) from tops and the side table (written into `out` if given)."""
    k = table.shape[1] - 1
    boxes = torch.cat([tops, tops + table[:, 1:k]], dim=-1)
    return boxes.long() if out is None else out.copy_(boxes)


def place_boxes(sizes: torch.Tensor, height: int, width: int, uniform: torch.Tensor | None,
                centers: torch.Tensor | None = None) -> torch.Tensor:
    """Boxes (n, K-1, 4) as (y0, x0, y1, x1), each inside its parent (box 0 = whole image).

    Box k is placed uniformly inside box k-1 using `uniform` (n, K-1, 2) in [0, 1); or, when
    `centers` (n, K-1, 2) is given (saliency), centred there and clamped inside its parent.
    """
    n, km1, _ = sizes.shape
    table = _side_template(height, width, km1 + 1, sizes.device).expand(n, -1, -1).clone()
    table[:, 1:km1 + 1] = sizes
    if centers is None:
        tops = _uniform_tops(table, uniform.to(sizes.device))
    else:
        tops = _centred_tops(table, centers)
    return _boxes_from(table, tops)


def sample_boxes(phi: torch.Tensor, height: int, width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Nested DCutMix boxes (n, K-1, 4) from proportions phi (n, K), placed uniformly at random."""
    n, k = phi.shape
    table = _side_table(phi, height, width)
    uniform = torch.rand((n, k - 1, 2), dtype=torch.float64, device=_device_of(generator), generator=generator)
    return _boxes_from(table, _uniform_tops(table, uniform.to(table.device)))


def sample_packed(n: int, k: int, concentration: torch.Tensor, generator: torch.Generator | None = None,
                  size: tuple[int, int] | None = None, centers_of=None, host_numpy: bool | None = None,
                  partners: str = "derangement") -> MixParams:
    """All of a batch's parameters, drawn as `sample_dirichlet`, `sample_partners` and `sample_boxes`
    draw them (same draws, same order, same values), in one packed int64 tensor (`MixParams.packed`).

    `size` (H, W) asks for boxes (None: Mixup, phi and index only); `centers_of(index)` -> (n, K-1, 2)
    centres the boxes instead of drawing their positions (SaliencyDCutMix). The slot weights (exact
    pixel fractions) come from the box sides, without building areas from the boxes again.
    `host_numpy` (default: for CPU generators) does the arithmetic on the draws in numpy. `partners` as
    in `sample_partners`.
    """
    _check_partners(partners)
    device = _device_of(generator)
    boxed = size is not None
    phi = sample_dirichlet(n, concentration, generator)
    perms, shift = _draw_partner_perms(n, k, generator, partners)
    uniform = None
    if boxed and centers_of is None:
        uniform = torch.rand((n, k - 1, 2), dtype=torch.float64, device=device, generator=generator)
    if host_numpy is None:
        host_numpy = device.type == "cpu"
    if host_numpy:
        return _host_arithmetic(phi, perms, shift, uniform, size, centers_of)
    pack = torch.empty(n, packed_width(k, boxed), dtype=torch.long, device=device)
    index, phi_out, weights, boxes = pack_views(pack, k, boxed)
    phi_out.copy_(phi)
    _write_partners(index, perms, shift)
    if boxed:
        height, width = size
        table = _side_table(phi, height, width)
        tops = _uniform_tops(table, uniform) if centers_of is None else _centred_tops(table, centers_of(index))
        _boxes_from(table, tops, out=boxes)
        _slot_weights_from_table(table, height, width, out=weights)
    return MixParams(phi=phi_out, index=index, boxes=boxes, weights=weights, packed=pack)


def _host_arithmetic(phi_t, perms_t, shift_t, uniform_t, size, centers_of) -> MixParams:
    """`sample_packed`'s arithmetic on CPU draws, in numpy: each step is the torch code's step (same
    IEEE float64 operations in the same order), so the values are the same bit for bit."""
    centers = None
    if centers_of is not None:
        centers = lambda index: centers_of(torch.from_numpy(index)).numpy()  # noqa: E731
    pack, views = host_params(phi_t.numpy(), perms_t.numpy(), None if shift_t is None else shift_t.numpy(),
                              None if uniform_t is None else uniform_t.numpy(), size, centers)
    return MixParams(packed=torch.from_numpy(pack), **{name: torch.from_numpy(v) for name, v in views.items()})


def host_params(phi, perms, shift, uniform, size, centers=None):
    """`sample_packed`'s arithmetic on numpy draws: (pack (n, packed_width) int64, {field: numpy view}).

    The draws are what `sample_packed` draws (phi (n, K) float64, perms (K-1, n), shift (K-1, 1) or
    None, uniform (n, K-1, 2) float64 or None); `centers(index)` -> (n, K-1, 2) numpy centres the
    boxes instead. Also used by the mixers' per-call fast path (`kmix.mix.fast`), which skips the
    torch views."""
    n, k = phi.shape
    boxed = size is not None
    pack = np.empty((n, packed_width(k, boxed)), dtype=np.int64)
    index = pack[:, :k]
    phi_out = pack[:, k:2 * k].view(np.float64)
    phi_out[...] = phi
    ar = np.arange(n)
    index[:, 0] = ar
    if shift is None:  # plain permutations
        index[:, 1:] = perms.T
    else:
        rows = ar[:k - 1, None] if k - 1 <= n else np.arange(k - 1)[:, None]
        index[:, 1:].T[rows, perms] = perms[rows, (ar + shift) % n]  # cols[j, perm[i]] = perm[i + s]
    views = {"phi": phi_out, "index": index}
    if boxed:
        height, width = size
        # Transposed layout ((K, ...) leading), so that every step works on contiguous rows of n values.
        # Stick-breaking and the rounded side rule, as _side_scales / _side_table:
        phi_t = np.ascontiguousarray(phi.T)
        cum = np.empty((k, n))
        cum[0] = phi_t[0]
        for j in range(1, k):  # cumsum, sequential as torch's
            np.add(cum[j - 1], phi_t[j], out=cum[j])
        remaining = 1.0 - cum + phi_t
        v = np.divide(phi_t, np.maximum(remaining, 1e-12, out=remaining), out=remaining)
        scales = np.sqrt(1.0 - np.minimum(np.maximum(v, 0.0, out=v), 1.0, out=v), out=v)  # clamp(0, 1)
        table = np.zeros((k + 1, 2, n))  # row 0 the image, rows 1..K-1 the boxes, row K empty
        table[0, 0], table[0, 1] = float(height), float(width)
        for j in range(1, k):
            np.rint(np.multiply(table[j - 1], scales[j - 1], out=table[j]), out=table[j])  # half to even, as torch.round
        sizes = table[1:k]
        slack = table[:k - 1] - sizes
        if centers is None:  # as _uniform_tops
            uniform = np.ascontiguousarray(uniform.transpose(1, 2, 0))  # (K-1, 2, n)
            tops = np.minimum(np.floor((slack + 1.0) * uniform), slack)
            for j in range(1, k - 1):  # cumsum over the boxes
                tops[j] += tops[j - 1]
        else:  # as _centred_tops
            wanted = centers(index).transpose(1, 2, 0) - np.floor(sizes * 0.5)  # centre - size // 2
            tops = np.empty_like(sizes)
            top = np.zeros((2, n))
            for j in range(k - 1):  # clamping makes each top depend on the clamped parent's
                top = tops[j] = top + np.minimum(np.maximum(wanted[j] - top, 0.0), slack[j])
        boxes = pack[:, 3 * k:].reshape(n, k - 1, 4)
        boxes_t = boxes.transpose(1, 2, 0)  # (K-1, 4, n) view
        boxes_t[:, :2] = tops
        boxes_t[:, 2:] = tops + sizes
        weights = pack[:, 2 * k:3 * k].view(np.float64)
        area = table[:, 0] * table[:, 1]  # (K+1, n): H*W, the box areas, 0 (exact integers)
        np.divide(area[:-1] - area[1:], height * width, out=weights.T)
        views.update(weights=weights, boxes=boxes)
    return pack, views
