"""The PC-DARTS supernet (Xu et al. 2020): partial-channel mixed ops, edge normalisation, alphas and betas.

Each edge sends only 1/K of its input channels through the weighted sum of the eight candidate
ops and passes the rest by (max-pooled on stride-2 edges), then shuffles channels so the next
edge sees a different slice. Each node sums its incoming edges weighted by softmax(betas) over
that node's edges (edge normalisation); each edge mixes its ops by softmax(alphas).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.models.darts_ops import PRIMITIVES, build_op, preprocess_input


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` equal channel groups: (N, g*c, H, W) -> channel order c0g0, c0g1, ..."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialMixedOp(nn.Module):
    """sum_o w_o * op_o(x[:, :C/K]) on the first C/K channels, bypass for the rest, then channel shuffle."""

    def __init__(self, channels: int, stride: int, partial_k: int = 4, primitives: tuple[str, ...] = PRIMITIVES):
        super().__init__()
        if partial_k < 1 or channels % partial_k:
            raise ValueError(f"channels ({channels}) must be divisible by partial_k ({partial_k})")
        self.k = partial_k
        self.active = channels // partial_k
        self.stride = stride
        self.ops = nn.ModuleList()
        for name in primitives:
            op = build_op(name, self.active, stride, affine=False)
            if "pool" in name:  # as in DARTS search: pooling outputs get a parameter-free BN
                op = nn.Sequential(op, nn.BatchNorm2d(self.active, affine=False))
            self.ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        active, bypass = x[:, : self.active], x[:, self.active:]
        mixed = sum(w * op(active) for w, op in zip(weights, self.ops))
        if self.stride == 2:
            bypass = F.max_pool2d(bypass, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([mixed, bypass], dim=1), self.k)


def edge_count(steps: int) -> int:
    """Edges in a cell with `steps` intermediate nodes (node i has i + 2 inputs): 14 for 4 nodes."""
    return sum(i + 2 for i in range(steps))


def normalised_edge_weights(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """Softmax of `betas` within each node's incoming edges, concatenated in edge order -> (n_edges,)."""
    if betas.shape != (edge_count(steps),):
        raise ValueError(f"betas must have shape ({edge_count(steps)},) for {steps} steps, got {tuple(betas.shape)}")
    parts, start = [], 0
    for i in range(steps):
        parts.append(F.softmax(betas[start: start + i + 2], dim=-1))
        start += i + 2
    return torch.cat(parts)


class SearchCell(nn.Module):
    """A supernet cell: every node reads all earlier states through partial mixed ops."""

    def __init__(self, steps: int, multiplier: int, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool, partial_k: int):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        self.preprocess0 = preprocess_input(c_prev_prev, channels, reduce_spatial=reduction_prev, affine=False)
        self.preprocess1 = preprocess_input(c_prev, channels, reduce_spatial=False, affine=False)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(PartialMixedOp(channels, stride, partial_k))

    def forward(self, s0, s1, op_weights: torch.Tensor, edge_weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = sum(edge_weights[offset + j] * self.edges[offset + j](h, op_weights[offset + j])
                       for j, h in enumerate(states))
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.multiplier:], dim=1)


class SearchNetwork(nn.Module):
    """PC-DARTS supernet: stem, `layers` search cells (reductions at 1/3 and 2/3), pool, linear.

    Architecture parameters: alphas_normal/alphas_reduce (n_edges, n_ops), betas_normal/betas_reduce
    (n_edges,), initialised to 1e-3 * N(0, 1) as in DARTS; everything else is a weight.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, channels: int = 16, layers: int = 8,
                 steps: int = 4, multiplier: int = 4, stem_multiplier: int = 3, partial_k: int = 4):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if steps < 1 or not 1 <= multiplier <= steps:
            raise ValueError(f"need steps >= 1 and 1 <= multiplier <= steps, got steps={steps}, multiplier={multiplier}")
        self.steps = steps
        self.num_classes = num_classes
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_chans, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        reduction_prev = False
        self.cells = nn.ModuleList()
        reduce_at = {layers // 3, 2 * layers // 3}
        for i in range(layers):
            reduction = i in reduce_at
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev, partial_k))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        n_edges, n_ops = edge_count(steps), len(PRIMITIVES)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(n_edges, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, n_ops))
        self.betas_normal = nn.Parameter(1e-3 * torch.randn(n_edges))
        self.betas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges))

    def arch_parameters(self) -> list[nn.Parameter]:
        """alphas and betas (the Adam-updated architecture parameters)."""
        return [self.alphas_normal, self.alphas_reduce, self.betas_normal, self.betas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except alphas and betas (the SGD-updated network weights)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def cell_weights(self, reduction: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax(alphas) per edge (n_edges, n_ops), normalised edge weights (n_edges,)) of one cell type."""
        alphas = self.alphas_reduce if reduction else self.alphas_normal
        betas = self.betas_reduce if reduction else self.betas_normal
        return F.softmax(alphas, dim=-1), normalised_edge_weights(betas, self.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = {False: self.cell_weights(False), True: self.cell_weights(True)}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            op_w, edge_w = weights[cell.reduction]
            s0, s1 = s1, cell(s0, s1, op_w, edge_w)
        return self.classifier(self.global_pool(s1).flatten(1))
