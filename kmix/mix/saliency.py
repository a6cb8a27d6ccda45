"""Batched spectral-residual saliency (Hou & Zhang, CVPR 2007) in torch: the peak used by SaliencyMix.

SaliencyMix uses OpenCV's StaticSaliencySpectralResidual per image; this computes the same kind of
map for the whole batch at once: grey image area-resized to at most 64x64, log-amplitude spectrum
minus its 3x3 box-filtered version, inverse FFT with the original phase, squared magnitude,
Gaussian blur. Every linear filter (resize, 3x3 box, Gaussian) is a small matrix applied to rows and
columns (L @ X @ R^T), which is exact for separable filters and much faster than tiny convolutions.
The peak location is scaled back to the image size.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

SALIENCY_SIZE = 64
BLUR_SIGMA = 2.5  # in pixels of a 64x64 map (scaled with the map size)


def _area_matrix(src: int, dst: int, device, dtype) -> torch.Tensor:
    """(dst, src) matrix averaging the source cells that overlap each destination cell."""
    edges = torch.arange(dst + 1, device=device, dtype=torch.float64) * (src / dst)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = torch.arange(src, device=device, dtype=torch.float64)[None]
    overlap = (torch.minimum(hi, cells + 1) - torch.maximum(lo, cells)).clamp_min(0)
    return (overlap / overlap.sum(1, keepdim=True)).to(dtype)


def _filter_matrix(taps: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(size, size) matrix applying the 1-D filter `taps` with 'replicate' or 'reflect' borders."""
    r = taps.numel() // 2
    idx = torch.arange(size, device=taps.device)[:, None] + torch.arange(-r, r + 1, device=taps.device)[None]
    if mode == "replicate":
        idx = idx.clamp(0, size - 1)
    else:  # reflect without repeating the edge sample; folds repeatedly for tiny sizes
        period = max(2 * (size - 1), 1)
        idx = idx.remainder(period)
        idx = torch.where(idx >= size, period - idx, idx)
    mat = torch.zeros(size, size, device=taps.device, dtype=taps.dtype)
    return mat.scatter_add_(1, idx, taps.expand(size, -1).contiguous())


def _gaussian_taps(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _sandwich(left: torch.Tensor, x: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ x @ right^T for a batch x (N, H, W)."""
    return torch.matmul(torch.matmul(left, x), right.T)


@lru_cache(maxsize=32)
def _filters(h: int, w: int, s: int, device: torch.device, dt: torch.dtype):
    """(resize rows, resize columns, 3x3 box, Gaussian blur) matrices for an h x w image and an s x s
    map: functions of the sizes only, so built once per size and device (cached, never written to)."""
    box = _filter_matrix(torch.full((3,), 1 / 3, device=device, dtype=dt), s, "replicate")
    blur = _filter_matrix(_gaussian_taps(BLUR_SIGMA * s / SALIENCY_SIZE, device, dt), s, "reflect")
    return _area_matrix(h, s, device, dt), _area_matrix(w, s, device, dt), box, blur


@lru_cache(maxsize=32)
def _blur_kernel(s: int, device: torch.device, dt: torch.dtype) -> torch.Tensor:
    """(1, 1, 2r+1, 2r+1) Gaussian kernel for an s x s map (the outer product of the separable taps)."""
    taps = _gaussian_taps(BLUR_SIGMA * s / SALIENCY_SIZE, device, dt)
    return torch.outer(taps, taps).view(1, 1, taps.numel(), taps.numel())


def spectral_residual_saliency(x: torch.Tensor, size: int = SALIENCY_SIZE) -> torch.Tensor:
    """Saliency maps (N, s, s), float32, s = min(size, H, W), for images x (N, C, H, W) of any dtype."""
    return _saliency_maps(x, size)[:, 0]


def _saliency_maps(x: torch.Tensor, size: int = SALIENCY_SIZE) -> torch.Tensor:
    """(N, 1, s, s) saliency maps in about twenty torch ops: the resize is skipped when it is the identity
    (s = H = W), the 3x3 mean filter is a replicate-padded average pool, the blur a reflect-padded
    convolution (the matrices of `_filters` where the map is too small to pad)."""
    _, _, h, w = x.shape
    s = min(size, h, w)
    grey = x.mean(dim=1, keepdim=True, dtype=torch.float32)  # (N, 1, H, W)
    if h != s or w != s:
        rows, cols, _, _ = _filters(h, w, s, x.device, torch.float32)
        grey = _sandwich(rows, grey, cols)
    spectrum = torch.fft.fft2(grey)
    log_amp = spectrum.abs().clamp_min_(1e-8).log_()
    if s >= 2:
        smooth = F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    else:
        _, _, box, _ = _filters(h, w, s, x.device, torch.float32)
        smooth = _sandwich(box, log_amp, box)
    # exp(log_amp - smooth) * exp(i * phase) == spectrum * exp(-smooth): no complex exp needed
    sal = torch.fft.ifft2(spectrum * smooth.neg_().exp_()).abs().square_()
    kernel = _blur_kernel(s, x.device, torch.float32)
    r = kernel.shape[-1] // 2
    if r < s:
        return F.conv2d(F.pad(sal, (r, r, r, r), mode="reflect"), kernel)
    _, _, _, blur = _filters(h, w, s, x.device, torch.float32)
    return _sandwich(blur, sal, blur)


def saliency_peaks(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) int64 (y, x) pixel coordinates of each image's most salient point, in x's resolution."""
    n, _, h, w = x.shape
    sal = _saliency_maps(x)
    size = sal.shape[-1]
    flat = sal.reshape(n, -1).argmax(dim=1)
    py, px = flat // size, flat % size
    y = ((py.double() + 0.5) * h / size).floor().long().clamp(0, h - 1)
    xx = ((px.double() + 0.5) * w / size).floor().long().clamp(0, w - 1)
    return torch.stack([y, xx], dim=1)


def saliency_peaks_numpy(x: torch.Tensor) -> np.ndarray:
    """`saliency_peaks(x)` as a host (N, 2) int64 array, the coordinates computed in numpy (same float64
    arithmetic): the mixers' fast path reads the peaks on the host anyway."""
    n, _, h, w = x.shape
    sal = _saliency_maps(x)
    size = sal.shape[-1]
    flat = sal.view(n, size * size).argmax(dim=1).cpu().numpy()
    py, px = flat // size, flat % size
    y = np.clip(np.floor((py + 0.5) * h / size).astype(np.int64), 0, h - 1)
    xx = np.clip(np.floor((px + 0.5) * w / size).astype(np.int64), 0, w - 1)
    return np.stack([y, xx], axis=1)
