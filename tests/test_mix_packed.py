"""The mixers' packed sampler: numpy host path == torch path == the public samplers, bit for bit."""
from __future__ import annotations

import pytest
import torch

from kmix import DCutMix, DMixup, SaliencyDCutMix
from kmix.mix import (MixParams, box_sizes, saliency_peaks, sample_boxes, sample_dirichlet, sample_partners,
                      slot_weights)
from kmix.mix.sampling import sample_packed


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fields(p: MixParams):
    return {f: getattr(p, f) for f in ("phi", "index", "boxes", "weights") if getattr(p, f) is not None}


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return same and (not a.is_floating_point() or torch.equal(a.signbit(), b.signbit()))


@pytest.mark.parametrize("k", [2, 3, 5, 9])
@pytest.mark.parametrize("hw", [(17, 23), (2, 2), (224, 224)])
@pytest.mark.parametrize("alpha", [0.05, 1.0])
@pytest.mark.parametrize("kind", ["mixup", "uniform", "centred"])
def test_numpy_host_path_equals_torch_path(k, hw, alpha, kind):
    n, (h, w) = 33, hw
    conc = torch.full((n, k), alpha, dtype=torch.float64)
    peaks = torch.stack([torch.randint(0, h, (n,), generator=_gen(1)), torch.randint(0, w, (n,), generator=_gen(2))], 1)
    size = None if kind == "mixup" else (h, w)
    centers_of = (lambda index: peaks[index[:, 1:]]) if kind == "centred" else None
    host = sample_packed(n, k, conc, _gen(k), size=size, centers_of=centers_of, host_numpy=True)
    dev = sample_packed(n, k, conc, _gen(k), size=size, centers_of=centers_of, host_numpy=False)
    a, b = _fields(host), _fields(dev)
    assert a.keys() == b.keys()
    for name in a:
        assert _equal(a[name], b[name]), name
    assert _equal(host.packed, dev.packed)


@pytest.mark.parametrize("k", [2, 5, 9])
def test_packed_sampler_draws_what_the_public_samplers_draw(k):
    n, h, w = 40, 31, 26
    alpha = torch.full((k,), 0.4, dtype=torch.float64)
    params = sample_packed(n, k, alpha.expand(n, k).contiguous(), _gen(3), size=(h, w))
    g = _gen(3)  # the same stream, drawn by the public functions in the mixers' order
    phi = sample_dirichlet(n, alpha, g)
    index = sample_partners(n, k, g)
    boxes = sample_boxes(phi, h, w, g)
    assert _equal(params.phi, phi) and _equal(params.index, index) and _equal(params.boxes, boxes)
    assert _equal(params.weights, slot_weights(boxes, h, w))  # the weights from the sides == from the boxes
    assert torch.equal(params.boxes[..., 2:] - params.boxes[..., :2], box_sizes(phi, h, w))


@pytest.mark.parametrize("mixer_cls", [DMixup, DCutMix, SaliencyDCutMix])
def test_params_are_views_of_one_tensor_and_move_in_one_copy(mixer_cls):
    x = torch.rand(12, 3, 16, 16, generator=_gen(0))
    params = mixer_cls(num_classes=4, k=4, alpha=0.5, generator=_gen(1)).sample_params(x)
    start, size = params.packed.data_ptr(), params.packed.nbytes
    for t in _fields(params).values():  # every field lies in the packed tensor's memory
        assert start <= t.data_ptr() < start + size
    assert params.to(x.device) is params
    moved = params.to("meta")  # another device: one copy of the packed tensor, same views
    assert moved.packed.device.type == "meta"
    for name, t in _fields(moved).items():
        ref = getattr(params, name)
        assert t.device.type == "meta" and t.shape == ref.shape and t.dtype == ref.dtype, name
        assert t.stride() == ref.stride() and t.storage_offset() == (ref.data_ptr() - start) // 8, name


def test_saliency_mixer_centres_boxes_on_the_peaks_like_the_torch_path():
    x = torch.rand(16, 3, 32, 32, generator=_gen(0))
    mix = SaliencyDCutMix(num_classes=16, k=5, alpha=0.5, generator=_gen(4))
    params = mix.sample_params(x)
    peaks = saliency_peaks(x)
    ref = sample_packed(16, 5, mix.alpha.expand(16, 5).contiguous(), _gen(4), size=(32, 32),
                        centers_of=lambda index: peaks[index[:, 1:]], host_numpy=False)
    assert _equal(params.boxes, ref.boxes) and _equal(params.weights, ref.weights)
