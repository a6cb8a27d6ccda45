"""Sampling of mixing parameters (proportions, partners, nested boxes), kept apart from applying them.

Every function takes an optional `torch.Generator` and draws on the generator's device (CPU by
default); the results are tiny (N x K) and are moved to the batch's device by the caller.
"""
from __future__ import annotations

import torch


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def sample_dirichlet(n: int, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Proportions phi (n, K) ~ Dirichlet(alpha), float64, rows summing to 1.

    Uses torch's own Dirichlet kernel (`torch._sample_dirichlet`, the one behind
    torch.distributions.Dirichlet), which, unlike `Dirichlet.sample`, takes a generator. float64:
    with small alpha many proportions lie within 1e-7 of 1, where float32 would round them to 1.
    """
    concentration = alpha.to(device=_device_of(generator), dtype=torch.float64).reshape(1, -1).expand(n, -1)
    return torch._sample_dirichlet(concentration.contiguous(), generator=generator)


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
