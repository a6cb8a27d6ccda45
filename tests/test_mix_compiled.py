"""The mixers' compiled path (`compiled=True`): the pixel step through torch.compile (static shapes)
gives, for the same seed, the eager call's labels and masks and its pixels (bit for bit where the mix is pure
gathers; DMixup's weighted sum within float rounding); a changed batch shape compiles again. The CUDA case
(marked `cuda`, run by benchmarks/gpu_check.sh) checks the same on a CUDA batch."""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from cuda_support import CUDA_ONLY, DEVICE
from kmix import DCutMix, DMixup, SaliencyDCutMix
from mix_inputs import batch as _batch, gen as _gen


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


def _assert_same_mix(eager, compiled, mixer_cls, dtype):
    """Labels and masks bit for bit; pixels bit for bit for the cut mixers (gathers), DMixup's within float
    rounding: a few float32 eps of values in [0, 1], or 1 for uint8 (a sum on a .5 boundary may round the other way)."""
    assert len(eager) == len(compiled)
    assert torch.equal(eager[1], compiled[1])  # labels (host numpy, not compiled)
    for e, c in zip(eager[2:], compiled[2:]):
        assert torch.equal(e, c)  # mixed masks
    e, c = eager[0], compiled[0]
    assert c.dtype == e.dtype and c.shape == e.shape and c.stride() == e.stride()
    if mixer_cls is not DMixup:
        assert torch.equal(e, c)
    elif dtype == torch.uint8:
        diff = (e.int() - c.int()).abs()
        assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3
    else:
        assert float((e - c).abs().max()) <= 4 * torch.finfo(torch.float32).eps


@pytest.mark.slow  # about 25 graphs to compile: ~1 min on a 2-core machine with a cold inductor cache
@pytest.mark.parametrize("mixer_cls", [DMixup, DCutMix, SaliencyDCutMix])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_equals_eager_for_the_same_draws(mixer_cls, k, dtype, channels_last):
    x = _batch(12, 19, 23, dtype=dtype, channels_last=channels_last)
    y = torch.randint(0, 6, (12,), generator=_gen(1))
    extra = () if mixer_cls is DMixup else (torch.randint(0, 30, (12, 19, 23), generator=_gen(2)),)
    kw = dict(num_classes=6, k=k, alpha=0.7)
    eager = mixer_cls(generator=_gen(k), **kw)
    compiled = mixer_cls(generator=_gen(k), compiled=True, **kw)
    before = _graphs()
    for _ in range(2):  # the second call reuses the graph with new draws
        _assert_same_mix(eager(x, y, *extra), compiled(x, y, *extra), mixer_cls, dtype)
    assert _graphs() == before + 1  # compiled once, not run eagerly


def test_a_changed_batch_shape_compiles_again():
    """Static shapes: each new batch shape is one more graph (not an eager fallback), each equal to the eager call.
    Large CPU images keep the eager box copies (faster than the compiled gather there): no graph."""
    eager = DCutMix(num_classes=4, k=3, generator=_gen(3))
    compiled = DCutMix(num_classes=4, k=3, generator=_gen(3), compiled=True)
    before = _graphs()
    for n, h, w in [(8, 16, 16), (6, 16, 16), (8, 16, 16), (3, 100, 100)]:
        x, y = _batch(n, h, w, seed=n), torch.arange(n) % 4
        _assert_same_mix(eager(x, y), compiled(x, y), DCutMix, torch.float32)
    assert _graphs() == before + 2  # two small shapes; the repeated one reuses its graph, 100x100 copies boxes


def test_calls_off_the_fast_path_stay_eager_and_equal():
    """A gradient through x takes the reference path, compiled or not: the same values, nothing compiled."""
    x = _batch(6, 8, 8).requires_grad_()
    y = torch.arange(6) % 3
    before = _graphs()
    a = DCutMix(num_classes=3, k=3, generator=_gen(4), compiled=True)(x, y)
    b = DCutMix(num_classes=3, k=3, generator=_gen(4))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and _graphs() == before


def test_compiled_must_be_a_bool():
    with pytest.raises(TypeError, match="compiled must be a bool, got 'yes'"):
        DCutMix(num_classes=3, compiled="yes")
    assert "compiled=True" in repr(DMixup(num_classes=3, compiled=True))
    assert "compiled" not in repr(DMixup(num_classes=3))


CUDA_CASES = [(DCutMix, torch.float32, False), (DCutMix, torch.uint8, False), (DCutMix, torch.float32, True),
              (DMixup, torch.float32, False), (DMixup, torch.uint8, False)]


@pytest.mark.parametrize("mixer_cls, dtype, channels_last", [pytest.param(*case, marks=CUDA_ONLY) for case in CUDA_CASES],
                         ids=[f"{c.__name__}-{str(d)[6:]}-{'cl' if f else 'contiguous'}" for c, d, f in CUDA_CASES])
def test_compiled_equals_eager_on_a_cuda_batch(mixer_cls, dtype, channels_last):
    x = _batch(64, 37, 45, dtype=dtype, channels_last=channels_last).to(DEVICE)
    y = torch.randint(0, 10, (64,), generator=_gen(5)).to(DEVICE)
    extra = () if mixer_cls is DMixup else (torch.randint(0, 30, (64, 37, 45), generator=_gen(6)).to(DEVICE),)
    kw = dict(num_classes=10, k=5, alpha=0.7)
    eager = mixer_cls(generator=_gen(7), **kw)
    compiled = mixer_cls(generator=_gen(7), compiled=True, **kw)
    for _ in range(2):
        _assert_same_mix(eager(x, y, *extra), compiled(x, y, *extra), mixer_cls, dtype)
