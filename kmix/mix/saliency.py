"""Batched spectral-residual saliency (Hou & Zhang, CVPR 2007) in torch: the peak used by SaliencyMix.

SaliencyMix uses OpenCV's StaticSaliencySpectralResidual per image; this computes the same kind of
map for the whole batch at once: grey image resized to 64x64, log-amplitude spectrum minus its 3x3
box-filtered version, inverse FFT with the original phase, squared magnitude, Gaussian blur. The
peak location is scaled back to the image size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SALIENCY_SIZE = 64
BLUR_SIGMA = 2.5  # in pixels of the 64x64 map


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def spectral_residual_saliency(x: torch.Tensor, size: int = SALIENCY_SIZE) -> torch.Tensor:
    """Saliency maps (N, size, size), float32, for images x (N, C, H, W) of any dtype."""
    grey = x.float().mean(dim=1, keepdim=True)
    grey = F.interpolate(grey, size=(size, size), mode="area")[:, 0]
    spectrum = torch.fft.fft2(grey)
    log_amp = torch.log(spectrum.abs().clamp_min(1e-8))
    smooth = F.avg_pool2d(F.pad(log_amp[:, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0]
    residual = torch.exp(log_amp - smooth) * torch.exp(1j * torch.angle(spectrum))
    sal = torch.fft.ifft2(residual).abs() ** 2
    g = _gaussian_kernel(BLUR_SIGMA, sal.device, sal.dtype)
    r = g.numel() // 2
    sal = F.conv2d(F.pad(sal[:, None], (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    sal = F.conv2d(F.pad(sal, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))[:, 0]
    return sal


def saliency_peaks(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) int64 (y, x) pixel coordinates of each image's most salient point, in x's resolution."""
    n, _, h, w = x.shape
    sal = spectral_residual_saliency(x)
    size = sal.shape[-1]
    flat = sal.reshape(n, -1).argmax(dim=1)
    py, px = flat // size, flat % size
    y = ((py.double() + 0.5) * h / size).floor().long().clamp(0, h - 1)
    xx = ((px.double() + 0.5) * w / size).floor().long().clamp(0, w - 1)
    return torch.stack([y, xx], dim=1)
