"""Sampling of mixing parameters (proportions, partners, nested boxes), kept apart from applying them.

Every function takes an optional `torch.Generator` and draws on the generator's device (CPU by
default); the results are tiny (N x K) and are moved to the batch's device by the caller.
"""
from __future__ import annotations

import torch


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def sample_gamma(shape: torch.Size | tuple[int, ...], concentration: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """log of Gamma(concentration, 1) draws, float64, via Marsaglia-Tsang with the alpha<1 boost.

    Written here (not torch.distributions) because torch's gamma sampler ignores `generator`.
    Working in log space keeps Dirichlet draws with tiny alpha from underflowing to 0/0.
    """
    device = _device_of(generator)
    a = concentration.to(device=device, dtype=torch.float64).expand(shape)
    boost = a < 1
    d = torch.where(boost, a + 1, a) - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    log_g = torch.empty(shape, dtype=torch.float64, device=device)
    pending = torch.ones(shape, dtype=torch.bool, device=device)
    while bool(pending.any()):  # acceptance is > 95% per round: a handful of rounds at most
        z = torch.randn(shape, dtype=torch.float64, device=device, generator=generator)
        u = torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = ok & pending
        log_g = torch.where(take, torch.log(d) + torch.log(v.clamp_min(1e-300)), log_g)
        pending = pending & ~ok
    u = torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
    return torch.where(boost, log_g + torch.log(u.clamp_min(1e-300)) / a, log_g)


def sample_dirichlet(n: int, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Proportions phi (n, K) ~ Dirichlet(alpha), float32, rows summing to 1."""
    log_g = sample_gamma((n, alpha.numel()), alpha.reshape(1, -1), generator)
    return torch.softmax(log_g, dim=1).to(torch.float32)


def sample_partners(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Partner indices (n, K): column 0 is the anchor itself, columns 1..K-1 random permutations.

    Each partner column is a random permutation of the batch without fixed points (a random
    permutation composed with a random non-zero cyclic shift), so a partner is never the anchor.
    """
    device = _device_of(generator)
    index = torch.empty(n, k, dtype=torch.long, device=device)
    index[:, 0] = torch.arange(n, device=device)
    ar = torch.arange(n, device=device)
    for j in range(1, k):
        perm = torch.randperm(n, device=device, generator=generator)
        shift = torch.randint(1, n, (1,), device=device, generator=generator)
        index[perm, j] = perm[(ar + shift) % n]
    return index


def stick_breaking(phi: torch.Tensor) -> torch.Tensor:
    """Stick-breaking fractions v (n, K-1): v_1 = phi_1, v_k = phi_k / prod_{j<k} (1 - v_j)."""
    remaining = 1.0 - torch.cumsum(phi, dim=1) + phi  # 1 - sum_{j<k} phi_j = prod_{j<k}(1 - v_j)
    v = phi[:, :-1] / remaining[:, :-1].clamp_min(1e-12)
    return v.clamp(0.0, 1.0)


def box_sizes(phi: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nested box sizes (n, K-1, 2) as (h, w): side_k = round(side_{k-1} * sqrt(1 - v_k))."""
    scale = torch.sqrt(1.0 - stick_breaking(phi.to(torch.float64)))
    n, km1 = scale.shape
    sizes = torch.empty(n, km1, 2, dtype=torch.long, device=phi.device)
    h = torch.full((n,), height, dtype=torch.float64, device=phi.device)
    w = torch.full((n,), width, dtype=torch.float64, device=phi.device)
    for k in range(km1):
        h = torch.minimum(torch.round(h * scale[:, k]), h)
        w = torch.minimum(torch.round(w * scale[:, k]), w)
        sizes[:, k, 0] = h.long()
        sizes[:, k, 1] = w.long()
    return sizes


def place_boxes(sizes: torch.Tensor, height: int, width: int, uniform: torch.Tensor | None,
                centers: torch.Tensor | None = None) -> torch.Tensor:
    """Boxes (n, K-1, 4) as (y0, x0, y1, x1), each inside its parent (box 0 = whole image).

    Box k is placed uniformly inside box k-1 using `uniform` (n, K-1, 2) in [0, 1); or, when
    `centers` (n, K-1, 2) is given (saliency), centred there and clamped inside its parent.
    """
    n, km1, _ = sizes.shape
    boxes = torch.empty(n, km1, 4, dtype=torch.long, device=sizes.device)
    top = torch.zeros(n, 2, dtype=torch.long, device=sizes.device)  # (y0, x0) of the parent box
    parent = torch.tensor([height, width], dtype=torch.long, device=sizes.device).expand(n, 2)
    for k in range(km1):
        size = sizes[:, k]
        slack = parent - size
        if centers is None:
            offset = torch.floor(uniform[:, k] * (slack + 1).to(uniform.dtype)).long()
        else:
            offset = centers[:, k] - size // 2 - top
        offset = torch.minimum(offset.clamp_min(0), slack)
        top = top + offset
        boxes[:, k, :2] = top
        boxes[:, k, 2:] = top + size
        parent = size
    return boxes


def sample_boxes(phi: torch.Tensor, height: int, width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Nested DCutMix boxes (n, K-1, 4) from proportions phi (n, K), placed uniformly at random."""
    sizes = box_sizes(phi, height, width)
    uniform = torch.rand(sizes.shape, dtype=torch.float64, device=_device_of(generator), generator=generator)
    return place_boxes(sizes, height, width, uniform.to(sizes.device))
