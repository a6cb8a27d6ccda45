"""Laws of the applied mix: label mass == pixel mass, DMixup sums, and what the paper's K=2 cases are (the field's
Mixup and CutMix are tested against timm and torchvision in test_mix_field_baselines.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kmix import DCutMix, DMixup, SaliencyDCutMix
from kmix.mix import saliency_peaks

CUT_MIXERS = [DCutMix, SaliencyDCutMix]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _constant_batch(n: int, h: int, w: int, c: int = 3) -> torch.Tensor:
    """Image i is filled with the value i (plus faint noise in other channels for saliency)."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, c, h, w).clone()
    return x


@pytest.mark.parametrize("mixer_cls", CUT_MIXERS)
@pytest.mark.parametrize("k", [2, 3, 5, 9])
@pytest.mark.parametrize("hw", [(32, 32), (17, 23)])
@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_label_mass_equals_pixel_mass_exactly(mixer_cls, k, hw, alpha):
    n, (h, w) = 24, hw
    x = _constant_batch(n, h, w)
    if mixer_cls is SaliencyDCutMix:  # give every image a distinct salient spot, keep channel 0 = id
        x[:, 1:] = torch.rand(n, 2, h, w, generator=_gen(1))
    y = torch.arange(n)
    mix = mixer_cls(num_classes=n, k=k, alpha=alpha, generator=_gen(k))
    mixed, soft = mix(x, y)
    pixel_ids = mixed[:, 0].round().long().reshape(n, -1)
    counts = F.one_hot(pixel_ids, n).sum(1).double() / (h * w)  # (n, n) pixel fraction of each image
    assert torch.equal(soft, counts.float()), (soft - counts.float()).abs().max()
    torch.testing.assert_close(soft.sum(1), torch.ones(n), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mixer_cls", CUT_MIXERS)
def test_label_weights_equal_the_nested_box_areas(mixer_cls):
    x, y = torch.rand(16, 3, 20, 20, generator=_gen(0)), torch.arange(16)
    mix = mixer_cls(num_classes=16, k=4, alpha=0.5, generator=_gen(3))
    params = mix.sample_params(x)
    boxes = params.boxes
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    outer = torch.cat([torch.full((16, 1), 400), area], 1)
    inner = torch.cat([area, torch.zeros(16, 1, dtype=area.dtype)], 1)
    _, soft = mix.apply(x, F.one_hot(y, 16).float(), params)
    expected = torch.zeros(16, 16, dtype=torch.float64)
    expected.scatter_add_(1, params.index, (outer - inner).double() / 400)
    assert torch.equal(soft, expected.float())


def test_dcutmix_label_follows_the_dirichlet_proportions_on_average():
    # rounding makes each label differ from phi a little, but on average they agree
    n, k = 4096, 3
    x = torch.zeros(n, 1, 64, 64)
    mix = DCutMix(num_classes=1, k=k, alpha=1.0, generator=_gen(4))
    params = mix.sample_params(x)
    from kmix.mix import slot_weights

    weights = slot_weights(params.boxes, 64, 64).double()
    assert (weights - params.phi).abs().mean(0).max() < 0.03
    torch.testing.assert_close(weights.mean(0), params.phi.mean(0), atol=0.01, rtol=0)


def test_dmixup_pixels_and_labels_are_the_weighted_sums():
    x, y = torch.rand(12, 3, 8, 9, generator=_gen(0)), torch.randint(0, 5, (12,), generator=_gen(1))
    mix = DMixup(num_classes=5, k=4, alpha=0.7, generator=_gen(2))
    mixed, soft = mix(x, y)
    params = DMixup(num_classes=5, k=4, alpha=0.7, generator=_gen(2)).sample_params(x)
    phi = params.phi.float()
    expected = sum(phi[:, j, None, None, None] * x[params.index[:, j]] for j in range(4))
    torch.testing.assert_close(mixed, expected, atol=1e-6, rtol=1e-6)
    expected_soft = sum(phi[:, j, None] * F.one_hot(y[params.index[:, j]], 5).float() for j in range(4))
    torch.testing.assert_close(soft, expected_soft, atol=1e-6, rtol=1e-6)


def test_k2_dmixup_is_a_per_sample_two_image_blend():
    # the paper's K=2 DMixup: Mixup's blend with one lambda per sample (the field's Mixup draws one per batch)
    x, y = torch.rand(32, 3, 8, 8, generator=_gen(0)), torch.randint(0, 10, (32,), generator=_gen(1))
    params = DMixup(num_classes=10, k=2, alpha=1.0, generator=_gen(5)).sample_params(x)
    mixed, soft = DMixup(num_classes=10, k=2, alpha=1.0, generator=_gen(5))(x, y)
    lam, perm = params.phi[:, 0].float(), params.index[:, 1]
    torch.testing.assert_close(mixed, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm])
    one_hot = F.one_hot(y, 10).float()
    torch.testing.assert_close(soft, lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[perm])


def _reference_cutmix(x, y, lam, perm, tops, num_classes):
    """A two-image paste, one sample at a time: box of sides round(side*sqrt(1-lam)) at the given top-left corner."""
    out, soft = x.clone(), torch.zeros(len(x), num_classes)
    h, w = x.shape[-2:]
    for i in range(len(x)):
        bh, bw = round(h * (1 - lam[i]) ** 0.5), round(w * (1 - lam[i]) ** 0.5)
        t, l = int(tops[i, 0]), int(tops[i, 1])
        out[i, :, t:t + bh, l:l + bw] = x[perm[i], :, t:t + bh, l:l + bw]
        area = bh * bw / (h * w)
        soft[i, y[i]] += 1 - area
        soft[i, y[perm[i]]] += area
    return out, soft


def test_k2_dcutmix_pastes_one_box_at_its_drawn_place():
    # the paper's K=2 DCutMix: one box of the rounded size, fully inside (not the field's CutMix, whose box is
    # clipped at the border); the box's place is kmix's own draw, so this checks the paste, not the placement
    x, y = torch.rand(32, 3, 24, 24, generator=_gen(0)), torch.randint(0, 10, (32,), generator=_gen(1))
    params = DCutMix(num_classes=10, k=2, alpha=1.0, generator=_gen(6)).sample_params(x)
    mixed, soft = DCutMix(num_classes=10, k=2, alpha=1.0, generator=_gen(6))(x, y)
    lam, perm = params.phi[:, 0].tolist(), params.index[:, 1]
    assert params.boxes.shape == (32, 1, 4)  # one box
    assert (params.boxes[:, 0, :2] >= 0).all() and (params.boxes[:, 0, 2:] <= 24).all()  # inside the image
    ref_x, ref_soft = _reference_cutmix(x, y, lam, perm, params.boxes[:, 0, :2], 10)
    assert torch.equal(mixed, ref_x)
    torch.testing.assert_close(soft, ref_soft, atol=1e-6, rtol=0)


def test_k2_saliency_dcutmix_centres_the_box_on_the_partners_peak():
    # as SaliencyMix, the box is centred on the pasted (partner) image's saliency peak; unlike SaliencyMix
    # (which clips the box at the border) kmix clamps the whole box inside the image
    x = torch.rand(16, 3, 32, 32, generator=_gen(0)) * 0.1
    for i in range(16):  # a bright square at a different place in each image
        t, l = 2 + (i * 5) % 26, 3 + (i * 11) % 26
        x[i, :, t:t + 4, l:l + 4] = 1.0
    y = torch.arange(16)
    params = SaliencyDCutMix(num_classes=16, k=2, alpha=1.0, generator=_gen(7)).sample_params(x)
    mixed, soft = SaliencyDCutMix(num_classes=16, k=2, alpha=1.0, generator=_gen(7))(x, y)
    perm, lam = params.index[:, 1], params.phi[:, 0].tolist()
    peaks = saliency_peaks(x)[perm]
    tops = torch.zeros(16, 2, dtype=torch.long)
    for i in range(16):
        bh = round(32 * (1 - lam[i]) ** 0.5)
        for d in range(2):
            tops[i, d] = min(max(int(peaks[i, d]) - bh // 2, 0), 32 - bh)
    ref_x, ref_soft = _reference_cutmix(x, y, lam, perm, tops, 16)
    assert torch.equal(mixed, ref_x)
    torch.testing.assert_close(soft, ref_soft, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_saliency_peak_finds_the_salient_spot(size):
    x = torch.rand(4, 3, size, size, generator=_gen(size)) * 0.2
    spots = torch.tensor([[size // 4, size // 5], [size * 3 // 4, size * 2 // 3], [size // 2, size - size // 6],
                          [size // 6, size // 2]])
    r = max(2, size // 16)
    for i, (cy, cx) in enumerate(spots.tolist()):
        x[i, :, cy - r:cy + r, cx - r:cx + r] = 1.0
    peaks = saliency_peaks(x)
    assert ((peaks - spots).abs().max(dim=1).values <= 2 * r).all(), (peaks, spots)


@pytest.mark.parametrize("mixer_cls", CUT_MIXERS)
def test_masks_are_mixed_with_the_same_boxes(mixer_cls):
    n, h, w = 10, 16, 16
    x = _constant_batch(n, h, w, c=1)
    mask = torch.arange(n).view(n, 1, 1).expand(n, h, w).clone()
    mixed, soft, mixed_mask = mixer_cls(num_classes=n, k=4, alpha=0.5, generator=_gen(1))(x, torch.arange(n), mask=mask)
    assert mixed_mask.dtype == mask.dtype and mixed_mask.shape == mask.shape
    assert torch.equal(mixed_mask, mixed[:, 0].long())
