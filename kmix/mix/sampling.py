"""Sampling of mixing parameters (proportions, partners, nested boxes), kept apart from applying them.

Every function takes an optional `torch.Generator` and draws on the generator's device (CPU by
default); the results are tiny (N x K) and are moved to the batch's device by the caller.
"""
from __future__ import annotations

import torch


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def sample_gamma(shape: torch.Size | tuple[int, ...], concentration: torch.Tensor,
                 generator: torch.Generator | None = None, rounds: int = 3) -> torch.Tensor:
    """log of Gamma(concentration, 1) draws, float64, via Marsaglia-Tsang with the alpha<1 boost.

    Written here (not torch.distributions) because torch's gamma sampler ignores `generator`.
    `rounds` proposals are drawn at once and the first accepted one is kept (acceptance is > 95%
    per proposal); the rare element with none accepted is redrawn. Working in log space keeps
    Dirichlet draws with tiny alpha from underflowing to 0/0.
    """
    device = _device_of(generator)
    a = concentration.to(device=device, dtype=torch.float64).expand(shape)
    boost = a < 1
    d = torch.where(boost, a + 1, a) - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    z = torch.randn((rounds, *shape), dtype=torch.float64, device=device, generator=generator)
    u = torch.rand((rounds + 1, *shape), dtype=torch.float64, device=device, generator=generator)
    v = (1 + c * z) ** 3
    log_v = torch.log(v.clamp_min(1e-300))
    ok = (v > 0) & (torch.log(u[:-1]) < 0.5 * z * z + d - d * v + d * log_v)
    first = ok.to(torch.uint8).argmax(dim=0, keepdim=True)  # first accepted proposal
    log_g = torch.log(d) + log_v.gather(0, first)[0]
    missing = ~ok.any(dim=0)
    if bool(missing.any()):  # probability ~1e-4 per element: redraw just those
        log_g[missing] = sample_gamma((int(missing.sum()),), a[missing] + boost[missing], generator, rounds)
    return torch.where(boost, log_g + torch.log(u[-1].clamp_min(1e-300)) / a, log_g)


def sample_dirichlet(n: int, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Proportions phi (n, K) ~ Dirichlet(alpha), rows summing to 1.

    float64: with small alpha many proportions lie within 1e-7 of 1, where float32 would round
    them to exactly 1 (a visible atom in the distribution).
    """
    log_g = sample_gamma((n, alpha.numel()), alpha.reshape(1, -1), generator)
    return torch.softmax(log_g, dim=1)


def sample_partners(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Partner indices (n, K): column 0 is the anchor itself, columns 1..K-1 random permutations.

    Each partner column is a random permutation of the batch without fixed points (a random
    permutation composed with a random non-zero cyclic shift), so a partner is never the anchor.
    """
    device = _device_of(generator)
    perms = torch.rand(k - 1, n, device=device, generator=generator).argsort(dim=1)  # (K-1, n)
    shift = torch.randint(1, n, (k - 1, 1), device=device, generator=generator)
    partners = perms.gather(1, (torch.arange(n, device=device) + shift) % n)
    columns = torch.empty_like(perms).scatter_(1, perms, partners)  # columns[j, perm[i]] = perm[i + s]
    return torch.cat([torch.arange(n, device=device)[None], columns]).T.contiguous()


def stick_breaking(phi: torch.Tensor) -> torch.Tensor:
    """Stick-breaking fractions v (n, K-1): v_1 = phi_1, v_k = phi_k / prod_{j<k} (1 - v_j)."""
    remaining = 1.0 - torch.cumsum(phi, dim=1) + phi  # 1 - sum_{j<k} phi_j = prod_{j<k}(1 - v_j)
    v = phi[:, :-1] / remaining[:, :-1].clamp_min(1e-12)
    return v.clamp(0.0, 1.0)


def box_sizes(phi: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nested box sizes (n, K-1, 2) as (h, w): side_k = round(side_{k-1} * sqrt(1 - v_k))."""
    scale = torch.sqrt(1.0 - stick_breaking(phi.to(torch.float64)))  # (n, K-1)
    n, km1 = scale.shape
    sizes = torch.empty(n, km1, 2, dtype=torch.float64, device=phi.device)
    side = torch.tensor([float(height), float(width)], dtype=torch.float64, device=phi.device).expand(n, 2)
    for k in range(km1):  # sequential: each side is rounded from the rounded parent side
        side = torch.minimum(torch.round(side * scale[:, k, None]), side)
        sizes[:, k] = side
    return sizes.long()


def place_boxes(sizes: torch.Tensor, height: int, width: int, uniform: torch.Tensor | None,
                centers: torch.Tensor | None = None) -> torch.Tensor:
    """Boxes (n, K-1, 4) as (y0, x0, y1, x1), each inside its parent (box 0 = whole image).

    Box k is placed uniformly inside box k-1 using `uniform` (n, K-1, 2) in [0, 1); or, when
    `centers` (n, K-1, 2) is given (saliency), centred there and clamped inside its parent.
    """
    n, km1, _ = sizes.shape
    parents = torch.cat([torch.tensor([height, width], device=sizes.device).expand(n, 1, 2), sizes[:, :-1]], 1)
    slack = parents - sizes  # (n, K-1, 2): room to move inside the parent
    if centers is None:
        offsets = torch.floor(uniform * (slack + 1).to(uniform.dtype)).long().minimum(slack)
        tops = offsets.cumsum(dim=1)
    else:
        tops = torch.empty_like(sizes)
        top = torch.zeros(n, 2, dtype=torch.long, device=sizes.device)
        for k in range(km1):  # clamping makes each top depend on the clamped parent's
            top = top + torch.minimum((centers[:, k] - sizes[:, k] // 2 - top).clamp_min(0), slack[:, k])
            tops[:, k] = top
    return torch.cat([tops, tops + sizes], dim=-1)


def sample_boxes(phi: torch.Tensor, height: int, width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Nested DCutMix boxes (n, K-1, 4) from proportions phi (n, K), placed uniformly at random."""
    sizes = box_sizes(phi, height, width)
    uniform = torch.rand(sizes.shape, dtype=torch.float64, device=_device_of(generator), generator=generator)
    return place_boxes(sizes, height, width, uniform.to(sizes.device))
