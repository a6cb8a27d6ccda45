"""The field's two-image baselines, as the field runs them: Mixup (Zhang et al., ICLR 2018) and CutMix
(Yun et al., ICCV 2019), the methods the paper's tables compare K-image mixing against.

They differ from the paper's K = 2 cases (`DMixup(k=2)`, `DCutMix(k=2)`) in how they sample, not in
how they apply: one lambda ~ Beta(alpha, alpha) per batch (mode "batch", as Yun's and Zhang's code,
timm's default mode and torchvision v2) or per sample (mode "elem", timm's elem mode), one random
permutation of the batch as partners (a sample may meet itself, as in the reference code), and for
CutMix a box of sides floor(sqrt(1 - lambda) x (H, W)) whose **centre is uniform over the whole
image and which is clipped at the border**, so the label is the exact kept area (timm's
`correct_lam`). DCutMix K=2 instead places its box fully inside the image, a stronger mixer: at
32x32, alpha=1 the partner's label weight averages 0.50 there against 0.30 here (docs/mixing.md).

Sampling returns the same `MixParams` as the K-image mixers, so applying (pixels, masks, labels as
exact pixel fractions) is the shared code.
"""
from __future__ import annotations

import torch

from kmix.mix.mixers import KImageMix
from kmix.mix.params import MixParams
from kmix.mix.sampling import _device_of

MODES = ("batch", "elem")


def sample_beta(count: int, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` draws of lambda ~ Beta(alpha, alpha), float64 (the first coordinate of a Dirichlet(alpha, alpha),
    drawn with torch's Dirichlet kernel, which takes a generator)."""
    concentration = torch.full((count, 2), float(alpha), dtype=torch.float64, device=_device_of(generator))
    return torch._sample_dirichlet(concentration, generator=generator)[:, 0]


def clipped_boxes(lam: torch.Tensor, height: int, width: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Yun et al.'s CutMix boxes (m, 1, 4) int64 as (y0, x0, y1, x1), one per lambda (m,).

    Cut sides floor(sqrt(1 - lambda) * (H, W)); a centre uniform over the pixels of the whole image;
    the box spans centre -+ side // 2, clipped to the image (so it may be smaller than drawn, or empty).
    """
    device = _device_of(generator)
    size = torch.tensor([float(height), float(width)], dtype=torch.float64, device=device)
    cut = (1.0 - lam.to(device=device, dtype=torch.float64)).clamp_(0.0, 1.0).sqrt_().unsqueeze(1).mul(size).floor_()
    centre = torch.rand((lam.shape[0], 2), dtype=torch.float64, device=device, generator=generator).mul_(size).floor_()
    half = cut.mul_(0.5).floor_()
    low = torch.minimum((centre - half).clamp_(min=0.0), size)
    high = torch.minimum((centre + half).clamp_(min=0.0), size)
    return torch.cat([low, high], dim=1).long().unsqueeze(1)


class TwoImageMix(KImageMix):
    """Base of the field's two-image mixers: K = 2, a scalar Beta alpha, a mode, one permutation per batch.

    `p` is the probability of mixing a batch (Yun et al. train CIFAR with 0.5, timm defaults to 1).
    """

    def __init__(self, num_classes: int, alpha: float = 1.0, p: float = 1.0, mode: str = "batch", *,
                 label_smoothing: float = 0.0, generator: torch.Generator | None = None):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a float (the Beta(alpha, alpha) parameter), got {alpha!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be 'batch' (one lambda per batch) or 'elem' (one per sample), got {mode!r}")
        super().__init__(num_classes=num_classes, k=2, alpha=alpha, p=p, label_smoothing=label_smoothing,
                         generator=generator, partners="permutation")
        self.mode = mode

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, alpha={float(self.alpha[0])}, p={self.p}, mode={self.mode!r}, "
                f"label_smoothing={self.label_smoothing}")

    def _lambdas(self, n: int) -> torch.Tensor:
        """lambda (n,) float64: one draw repeated (batch mode) or one per sample (elem)."""
        lam = sample_beta(1 if self.mode == "batch" else n, float(self.alpha[0]), self.generator)
        return lam.expand(n) if self.mode == "batch" else lam

    def _partners(self, n: int) -> torch.Tensor:
        """(n, 2) int64: the anchor, and its partner under one random permutation of the batch."""
        device = _device_of(self.generator)
        perm = torch.randperm(n, device=device, generator=self.generator)
        return torch.stack([torch.arange(n, device=device), perm], dim=1)


class Mixup(TwoImageMix):
    """Mixup (Zhang et al. 2018): x = lambda x_i + (1 - lambda) x_perm(i), the label likewise, lambda ~ Beta(alpha, alpha)."""

    uses_boxes = False

    def sample_params(self, x: torch.Tensor) -> MixParams:
        """lambda (per batch or per sample) and one permutation of the batch."""
        lam = self._lambdas(x.shape[0])
        index = self._partners(x.shape[0])
        return MixParams(phi=torch.stack([lam, 1.0 - lam], dim=1), index=index)


class CutMix(TwoImageMix):
    """CutMix (Yun et al. 2019): paste the partner's box, centre uniform over the image and clipped at its
    border; the label is the exact pixel fraction of each image."""

    def sample_params(self, x: torch.Tensor) -> MixParams:
        """lambda, one permutation, then the boxes (one per batch or one per sample)."""
        n, _, h, w = x.shape
        lam = self._lambdas(n)
        index = self._partners(n)
        boxes = clipped_boxes(lam[:1] if self.mode == "batch" else lam, h, w, self.generator)
        boxes = boxes.expand(n, 1, 4).contiguous() if self.mode == "batch" else boxes
        # phi is the drawn lambda (the prior); the labels use the exact kept areas (`apply` counts them)
        return MixParams(phi=torch.stack([lam, 1.0 - lam], dim=1), index=index, boxes=boxes)
