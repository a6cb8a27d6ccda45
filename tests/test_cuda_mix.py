"""The mixing core on CUDA: the same MixParams give the same mix as on CPU, and sampling with a CUDA
generator obeys the laws the CPU tests check (Dirichlet moments, partners, nesting, label = pixel mass).

Tolerances: DCutMix / SaliencyDCutMix pixels, masks and labels are bit-exact (a gather and integer
areas). Labels of every mixer are bit-exact (float64 sums in a fixed order). DMixup pixels may differ
by float rounding only: |cuda - cpu| <= K * eps(dtype) for float images in [0, 1] (each device is
within ~K/2 eps of the exact float64 sum; CUDA may fuse the multiply-add), and by at most 1 for uint8
(a float32 result near .5 can round either way), on fewer than 0.1% of the pixels.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cuda_support import CUDA_ONLY, DEVICE
from kmix import DCutMix, DMixup, SaliencyDCutMix
from kmix.mix import (MixParams, box_sizes, saliency_peaks, sample_boxes, sample_dirichlet, sample_partners,
                      soft_targets)

pytestmark = CUDA_ONLY

MIXERS = [DMixup, DCutMix, SaliencyDCutMix]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.uint8]
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
N, C, H, W, CLASSES = 64, 3, 37, 45, 10  # odd, non-square images: off-by-one errors show


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _batch(dtype: torch.dtype, memory_format, shape=(N, C, H, W), seed: int = 0) -> torch.Tensor:
    x = torch.rand(shape, generator=_gen(seed))
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.contiguous(memory_format=memory_format)


def _soft_labels(n: int, seed: int = 1) -> torch.Tensor:
    """Smoothed one-hot rows for half the batch, random soft rows for the rest (both kinds of input)."""
    y = torch.randint(0, CLASSES, (n,), generator=_gen(seed))
    t = soft_targets(y, CLASSES, label_smoothing=0.1)
    t[n // 2:] = sample_dirichlet(n - n // 2, torch.ones(CLASSES, dtype=torch.float64), _gen(seed + 1)).float()
    return t


def _on(params: MixParams, device: str) -> MixParams:
    boxes = None if params.boxes is None else params.boxes.to(device)
    return MixParams(phi=params.phi.to(device), index=params.index.to(device), boxes=boxes)


@pytest.mark.parametrize("mixer_cls", MIXERS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("k", [2, 5])
def test_cuda_apply_equals_cpu_apply(mixer_cls, dtype, fmt, k):
    x = _batch(dtype, FORMATS[fmt])
    targets = _soft_labels(N)
    mask = torch.randint(0, 21, (N, H, W), generator=_gen(2))
    mix = mixer_cls(num_classes=CLASSES, k=k, alpha=0.7, generator=_gen(3))
    params = mix.sample_params(x)
    use_mask = mix.uses_boxes
    ref = mix.apply(x, targets, params, mask=mask if use_mask else None)
    for where in ("cpu", DEVICE):  # parameters sampled on the CPU, or already on the GPU
        out = mix.apply(x.to(DEVICE), targets.to(DEVICE), _on(params, where), mask=mask.to(DEVICE) if use_mask else None)
        mixed = out[0]
        assert mixed.device.type == DEVICE and mixed.dtype == dtype
        assert mixed.is_contiguous(memory_format=FORMATS[fmt]), "memory format not kept on CUDA"
        assert torch.equal(out[1].cpu(), ref[1]), f"labels differ (params on {where})"
        if use_mask:
            assert torch.equal(mixed.cpu(), ref[0]), f"pixels differ (params on {where})"
            assert torch.equal(out[2].cpu(), ref[2]), f"masks differ (params on {where})"
        elif dtype == torch.uint8:
            diff = (mixed.cpu().int() - ref[0].int()).abs()
            assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3, (int(diff.max()),
                                                                                        float((diff > 0).float().mean()))
        else:
            tol = k * torch.finfo(dtype).eps
            gap = float((mixed.cpu().double() - ref[0].double()).abs().max())
            assert gap <= tol, f"DMixup {dtype} K={k}: max |cuda - cpu| = {gap:.3g} > {tol:.3g} (params on {where})"


def test_cuda_apply_equals_cpu_apply_at_imagenet_size():
    """224x224 and K=9: the source map and gather at the size of the benchmarks, both formats."""
    mix = DCutMix(num_classes=CLASSES, k=9, alpha=0.3, generator=_gen(4))
    for fmt in FORMATS.values():
        x = _batch(torch.float32, fmt, shape=(16, 3, 224, 224), seed=5)
        targets = _soft_labels(16)
        params = mix.sample_params(x)
        ref = mix.apply(x, targets, params)
        out = mix.apply(x.to(DEVICE), targets.to(DEVICE), params)
        assert torch.equal(out[0].cpu(), ref[0]) and torch.equal(out[1].cpu(), ref[1])


def test_mixer_call_on_cuda_batch_equals_cpu_call():
    """The public call (labels checked, one-hot built on the GPU, CPU generator) matches the CPU call."""
    x, y = _batch(torch.float32, torch.contiguous_format), torch.randint(0, CLASSES, (N,), generator=_gen(6))
    for cls in MIXERS:
        if cls is SaliencyDCutMix:
            continue  # its boxes follow the saliency peak, computed by float FFTs on each device (see below)
        cpu = cls(num_classes=CLASSES, k=3, alpha=0.5, label_smoothing=0.1, generator=_gen(7))(x, y)
        gpu = cls(num_classes=CLASSES, k=3, alpha=0.5, label_smoothing=0.1, generator=_gen(7))(x.to(DEVICE), y.to(DEVICE))
        assert torch.equal(gpu[1].cpu(), cpu[1])
        torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=3 * torch.finfo(torch.float32).eps, rtol=0)
    with pytest.raises(ValueError, match="label 10 out of range"):
        DCutMix(num_classes=CLASSES, k=3)(x.to(DEVICE), torch.full((N,), 10, device=DEVICE))


@pytest.mark.parametrize("size", [32, 224])
def test_saliency_peaks_on_cuda_find_the_spot_like_cpu(size):
    x = torch.rand(4, 3, size, size, generator=_gen(size)) * 0.2
    spots = torch.tensor([[size // 4, size // 5], [size * 3 // 4, size * 2 // 3], [size // 2, size - size // 6],
                          [size // 6, size // 2]])
    r = max(2, size // 16)
    for i, (cy, cx) in enumerate(spots.tolist()):
        x[i, :, cy - r:cy + r, cx - r:cx + r] = 1.0
    cpu, gpu = saliency_peaks(x), saliency_peaks(x.to(DEVICE))
    assert gpu.device.type == DEVICE
    assert ((gpu.cpu() - spots).abs().max(dim=1).values <= 2 * r).all(), (gpu, spots)
    assert ((gpu.cpu() - cpu).abs().max() <= 2 * r), (gpu, cpu)


# --- sampling with a CUDA generator ------------------------------------------------------------

@pytest.mark.parametrize("alpha", [(0.2, 0.2, 0.2, 0.2, 0.2), (0.2, 0.5, 1.0, 3.0), (5.0, 0.05)])
def test_dirichlet_moments_with_cuda_generator(alpha):
    n = 200_000
    a = torch.tensor(alpha, dtype=torch.float64)
    phi = sample_dirichlet(n, a, _gen(1, DEVICE))
    assert phi.device.type == DEVICE and phi.dtype == torch.float64
    phi = phi.cpu()
    assert torch.isfinite(phi).all() and (phi >= 0).all()
    torch.testing.assert_close(phi.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-9, rtol=0)
    a0 = a.sum()
    mean, var = a / a0, a * (a0 - a) / (a0 ** 2 * (a0 + 1))
    emp_mean, emp_var = phi.mean(0), phi.var(0)
    se_mean = (var / n).sqrt()
    se_var = ((((phi - emp_mean) ** 4).mean(0) - emp_var ** 2) / n).sqrt()
    assert torch.all((emp_mean - mean).abs() < 5 * se_mean), (emp_mean, mean)
    assert torch.all((emp_var - var).abs() < 5 * se_var), (emp_var, var)
    same = sample_dirichlet(1000, a, _gen(1, DEVICE))
    assert torch.equal(same, sample_dirichlet(1000, a, _gen(1, DEVICE)))  # reproducible for a seed


@pytest.mark.parametrize("n, k", [(2, 2), (3, 5), (64, 5), (257, 9)])
def test_partners_with_cuda_generator_are_permutations_without_fixed_points(n, k):
    idx = sample_partners(n, k, _gen(n, DEVICE))
    assert idx.device.type == DEVICE and idx.shape == (n, k)
    idx = idx.cpu()
    assert torch.equal(idx[:, 0], torch.arange(n))
    for j in range(1, k):
        assert torch.equal(idx[:, j].sort().values, torch.arange(n))
        assert (idx[:, j] != torch.arange(n)).all(), "a partner equal to its anchor"


def test_partners_with_cuda_generator_are_spread_over_the_batch():
    idx = torch.cat([sample_partners(8, 9, _gen(s, DEVICE))[:, 1:] for s in range(500)])  # 500 x 8 rows x 8
    counts = torch.bincount(idx[0::8].flatten().cpu(), minlength=8).double()  # partners of image 0
    expected = 500 * 8 / 7
    assert counts[0] == 0 and ((counts[1:] - expected).abs() < 5 * math.sqrt(expected)).all(), counts


@pytest.mark.parametrize("k", [2, 3, 5, 9])
def test_boxes_with_cuda_generator_are_nested_and_follow_the_size_rule(k):
    h, w, n = 31, 40, 2000
    g = _gen(k, DEVICE)
    phi = sample_dirichlet(n, torch.full((k,), 0.5, dtype=torch.float64), g)
    boxes = sample_boxes(phi, h, w, g)
    assert boxes.device.type == DEVICE and boxes.shape == (n, k - 1, 4)
    boxes = boxes.cpu()
    sizes = torch.stack([boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]], -1)
    assert torch.equal(sizes, box_sizes(phi.cpu(), h, w)), "CUDA box sizes differ from the CPU rule"
    outer = torch.tensor([0, 0, h, w]).expand(n, 4)
    for j in range(k - 1):
        b = boxes[:, j]
        assert (b[:, :2] >= outer[:, :2]).all() and (b[:, 2:] <= outer[:, 2:]).all(), "box outside its parent"
        outer = b


def test_box_position_with_cuda_generator_is_uniform_inside_the_parent():
    # K=2 with phi fixed: every box has the same size, its offset takes each allowed value equally often
    n, side = 70_000, 10
    phi = torch.tensor([[0.84, 0.16]], dtype=torch.float64, device=DEVICE).expand(n, 2)  # box side 4
    boxes = sample_boxes(phi, side, side, _gen(11, DEVICE)).cpu()
    assert (boxes[:, 0, 2] - boxes[:, 0, 0] == 4).all()
    counts = torch.bincount(boxes[:, 0, 0], minlength=7).double()
    assert counts.numel() == 7
    assert ((counts - n / 7).abs() < 5 * math.sqrt(n / 7)).all(), counts


@pytest.mark.parametrize("mixer_cls", [DCutMix, SaliencyDCutMix])
@pytest.mark.parametrize("k", [2, 5])
def test_mixer_with_cuda_generator_labels_equal_pixel_mass(mixer_cls, k):
    n, h, w = 24, 17, 23
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
    x[:, 1:] = torch.rand(n, 2, h, w, generator=_gen(1))  # distinct salient spots; channel 0 = image id
    x = x.to(DEVICE)
    mix = mixer_cls(num_classes=n, k=k, alpha=0.5, generator=_gen(k, DEVICE))
    mixed, soft = mix(x, torch.arange(n, device=DEVICE))
    assert mixed.device.type == soft.device.type == DEVICE
    pixel_ids = mixed[:, 0].round().long().reshape(n, -1)
    counts = F.one_hot(pixel_ids, n).sum(1).double() / (h * w)
    assert torch.equal(soft, counts.float()), (soft - counts.float()).abs().max()
    again = mixer_cls(num_classes=n, k=k, alpha=0.5, generator=_gen(k, DEVICE))(x, torch.arange(n, device=DEVICE))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], soft)  # same CUDA seed, same mix


def test_mixing_probability_with_cuda_generator():
    x, y = torch.rand(2, 1, 4, 4, device=DEVICE), torch.arange(2, device=DEVICE)
    mix = DCutMix(num_classes=2, k=2, alpha=1.0, p=0.3, generator=_gen(0, DEVICE))
    calls = 1000
    mixed = sum(mix(x, y)[0] is not x for _ in range(calls))
    assert abs(mixed - 0.3 * calls) < 5 * math.sqrt(calls * 0.3 * 0.7), mixed
