"""Hessian tools by double backward: Hessian-vector products, top eigenpairs (power iteration with deflation),
Hutchinson trace. The loss is the mean over a fixed list of batches, with the model in eval mode (BatchNorm uses
its running statistics, dropout is off), so every product is of one deterministic function."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from kmix.runs import Stream, generator_for

Vector = list[torch.Tensor]  # one tensor per parameter: a point/direction in weight space


def vdot(a: Vector, b: Vector) -> float:
    """Inner product of two weight-space vectors."""
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def vnorm(a: Vector) -> float:
    """Euclidean norm of a weight-space vector."""
    return math.sqrt(vdot(a, a))


def vscale(a: Vector, s: float) -> Vector:
    """s * a."""
    return [x * s for x in a]


def vaxpy(alpha: float, x: Vector, y: Vector) -> Vector:
    """alpha * x + y."""
    return [alpha * xi + yi for xi, yi in zip(x, y)]


class LossOnData:
    """Mean loss of `model` over fixed `batches` as a function of its trainable parameters (eval mode)."""

    def __init__(self, model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 device: torch.device | str = "cpu",
                 criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy):
        if not batches:
            raise ValueError("batches is empty: the loss needs at least one batch")
        self.model = model.eval()
        self.device = torch.device(device)
        self.batches = list(batches)
        self.criterion = criterion
        self.n = sum(len(y) for _, y in self.batches)
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        self.names = [k for k, _ in named]
        self.params: Vector = [p for _, p in named]

    def like_params(self, fill: Callable[[torch.Tensor], torch.Tensor]) -> Vector:
        """A weight-space vector built per parameter by `fill(param)`."""
        return [fill(p.detach()) for p in self.params]

    @torch.no_grad()
    def evaluate(self, params: Vector | None = None) -> tuple[float, float]:
        """(mean loss, top-1 error in percent) at `params` (default: the model's own weights); the model is not modified."""
        override = dict(zip(self.names, params)) if params is not None else {}
        total, wrong = 0.0, 0
        for x, y in self.batches:
            x, y = x.to(self.device), y.to(self.device)
            out = functional_call(self.model, override, (x,), strict=False) if override else self.model(x)
            total += float(self.criterion(out, y)) * len(y)
            if out.dim() == 2 and out.shape[1] > 1 and y.dtype == torch.long:
                wrong += int((out.argmax(1) != y).sum())
        return total / self.n, 100.0 * wrong / self.n

    def hvp(self, v: Vector) -> Vector:
        """Hessian of the mean loss times `v`, by double backward, accumulated batch by batch."""
        out = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            x, y = x.to(self.device), y.to(self.device)
            loss = self.criterion(self.model(x), y) * (len(y) / self.n)
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = sum((g * vi).sum() for g, vi in zip(grads, v))
            hv = torch.autograd.grad(dot, self.params)
            for acc, h in zip(out, hv):
                acc.add_(h.detach())
        return out


def _randn_like(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)


def top_eigenpairs(loss: LossOnData, k: int = 2, iters: int = 100, tol: float = 1e-3, seed: int = 0,
                   quiet: bool = True) -> tuple[list[float], list[Vector]]:
    """Top-`k` Hessian eigenvalues (largest magnitude) and unit eigenvectors by power iteration with deflation.

    Each new vector is kept orthogonal to the ones already found; iteration stops when the Rayleigh quotient
    changes by less than `tol` relative to its value.
    """
    if k < 1 or iters < 1 or tol <= 0:
        raise ValueError(f"need k >= 1, iters >= 1, tol > 0; got k={k}, iters={iters}, tol={tol}")
    gen = generator_for(Stream.HESSIAN_EIGEN, seed)
    values: list[float] = []
    vectors: list[Vector] = []
    for _ in tqdm(range(k), desc="eigenpairs", disable=quiet, leave=False):
        v = loss.like_params(lambda p: _randn_like(p, gen))
        eig = None
        for _ in range(iters):
            for u in vectors:  # deflation: stay orthogonal to eigenvectors already found
                v = vaxpy(-vdot(v, u), u, v)
            v = vscale(v, 1.0 / max(vnorm(v), 1e-30))
            hv = loss.hvp(v)
            new = vdot(v, hv)
            v = hv
            if eig is not None and abs(new - eig) <= tol * (abs(eig) + 1e-12):
                eig = new
                break
            eig = new
        for u in vectors:
            v = vaxpy(-vdot(v, u), u, v)
        values.append(float(eig))
        vectors.append(vscale(v, 1.0 / max(vnorm(v), 1e-30)))
    return values, vectors


def hutchinson_trace(loss: LossOnData, samples: int = 50, seed: int = 0,
                     quiet: bool = True) -> tuple[float, float]:
    """Hessian trace estimate E[z^T H z] over Rademacher z: returns (mean, standard error of the mean)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    gen = generator_for(Stream.HESSIAN_TRACE, seed)
    draws = []
    for _ in tqdm(range(samples), desc="trace", disable=quiet, leave=False):
        z = loss.like_params(lambda p: (torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p.dtype).to(p.device))
        draws.append(vdot(z, loss.hvp(z)))
    mean = sum(draws) / len(draws)
    if len(draws) < 2:
        return mean, float("nan")
    var = sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)
    return mean, math.sqrt(var / len(draws))
