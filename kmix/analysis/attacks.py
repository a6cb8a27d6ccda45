"""L-inf FGSM and PGD in [0, 1] pixel space. Models take [0, 1] images and normalise inside
(`kmix.models.Normalized`), so the eps-ball and the clamp are in pixel units, as they should be."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _check(x: torch.Tensor, eps: float) -> None:
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (in [0, 1] pixel units), got {eps}")
    if not x.is_floating_point():
        raise TypeError(f"images must be a float tensor in [0, 1], got dtype {x.dtype}")


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy w.r.t. the input only (parameters get no .grad)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps that increases the loss, clamped to [0, 1]."""
    _check(x, eps)
    if eps == 0:
        return x.detach().clone()
    return (x.detach() + eps * _input_grad(model, x, y).sign()).clamp_(0, 1)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """L-inf PGD: uniform random start in the eps-ball, `steps` signed steps, each projected to the ball and [0, 1].

    step_size defaults to 2.5 * eps / steps (Madry et al.).
    """
    _check(x, eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if step_size is None:
        step_size = 2.5 * eps / steps
    if step_size < 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    x0 = x.detach()
    if eps == 0:
        return x0.clone()
    if random_start:
        noise = torch.rand(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        adv = (x0 + (2 * noise - 1) * eps).clamp(0, 1)
    else:
        adv = x0.clone()
    for _ in range(steps):
        adv = adv + step_size * _input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x0 - eps), x0 + eps).clamp_(0, 1)
    return adv.detach()
