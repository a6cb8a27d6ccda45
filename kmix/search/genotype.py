"""Derive a discrete cell from the supernet: per node the top-2 incoming edges, op = argmax excluding 'none'.

Edge strength = max over non-'none' ops of softmax(alphas) * normalised beta of the edge (PC-DARTS).
Ties are broken deterministically: among equal strengths the lower edge (input state) index wins,
among equal op weights the op earlier in PRIMITIVES wins.
"""
from __future__ import annotations

import torch

from kmix.models.darts_genotype import Genotype, load_genotype, save_genotype
from kmix.models.darts_ops import PRIMITIVES
from kmix.search.supernet import SearchNetwork, edge_count

__all__ = ["Genotype", "derive_cell", "derive_genotype", "load_genotype", "save_genotype"]

NONE_INDEX = PRIMITIVES.index("none")


def derive_cell(op_weights: torch.Tensor, edge_weights: torch.Tensor, steps: int,
                primitives: tuple[str, ...] = PRIMITIVES) -> list[tuple[str, int]]:
    """[(op, input_state)] * 2 per node from op weights (n_edges, n_ops) and edge weights (n_edges,)."""
    n_edges = edge_count(steps)
    if op_weights.shape != (n_edges, len(primitives)) or edge_weights.shape != (n_edges,):
        raise ValueError(
            f"expected op_weights ({n_edges}, {len(primitives)}) and edge_weights ({n_edges},), "
            f"got {tuple(op_weights.shape)} and {tuple(edge_weights.shape)}"
        )
    w = op_weights.detach().double().cpu().clone()
    w[:, NONE_INDEX] = float("-inf")
    # explicit tie-break: the largest weight, then the lowest op index
    best_op = [max(range(len(primitives)), key=lambda o, row=row: (row[o], -o)) for row in w.tolist()]
    strength = [w[e, best_op[e]].item() * edge_weights[e].item() for e in range(n_edges)]
    cell: list[tuple[str, int]] = []
    start = 0
    for node in range(steps):
        n_in = node + 2
        ranked = sorted(range(n_in), key=lambda j: (-strength[start + j], j))[:2]
        for j in sorted(ranked):
            cell.append((primitives[best_op[start + j]], j))
        start += n_in
    return cell


def derive_genotype(model: SearchNetwork) -> Genotype:
    """The genotype a supernet currently encodes (concat = all intermediate nodes)."""
    normal = derive_cell(*model.cell_weights(False), model.steps)
    reduce = derive_cell(*model.cell_weights(True), model.steps)
    concat = tuple(range(2, model.steps + 2))
    return Genotype(normal=tuple(normal), normal_concat=concat, reduce=tuple(reduce), reduce_concat=concat)
