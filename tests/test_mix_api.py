"""The public mixer API: dtypes, devices, memory formats, chaining, determinism, p, errors, collate, loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from kmix import DCutMix, DMixup, MixCollate, SaliencyDCutMix, SoftTargetCrossEntropy
from kmix.mix import slot_weights

MIXERS = [DMixup, DCutMix, SaliencyDCutMix]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mixer_cls", MIXERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_shape_dtype_device_and_memory_format_are_kept(mixer_cls, dtype, channels_last, device):
    x = torch.rand(8, 3, 12, 10, generator=_gen(0))
    x = (x * 255).to(dtype) if dtype == torch.uint8 else x.to(dtype)
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    before = x.clone()
    y = torch.randint(0, 7, (8,), generator=_gen(1)).to(device)
    mixed, soft = mixer_cls(num_classes=7, k=3, alpha=0.5, generator=_gen(2))(x, y)
    assert mixed.shape == x.shape and mixed.dtype == x.dtype and mixed.device == x.device
    assert mixed.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert soft.shape == (8, 7) and soft.dtype == torch.float32 and soft.device == x.device
    torch.testing.assert_close(soft.sum(1), torch.ones(8, device=device), atol=1e-6, rtol=0)
    assert torch.equal(x, before), "the input batch was modified in place"


@pytest.mark.parametrize("mixer_cls", [DCutMix, SaliencyDCutMix])
def test_uint8_cutmix_copies_input_pixels_exactly(mixer_cls):
    x = (torch.rand(8, 3, 16, 16, generator=_gen(0)) * 255).to(torch.uint8)
    mixed, _ = mixer_cls(num_classes=4, k=4, alpha=0.3, generator=_gen(1))(x, torch.zeros(8, dtype=torch.long))
    # every output pixel equals the same pixel of some input image
    match = (mixed[:, None] == x[None]).all(dim=2).any(dim=1)
    assert match.all()


def test_uint8_dmixup_rounds_the_float_result():
    x = (torch.rand(8, 3, 6, 6, generator=_gen(0)) * 255).to(torch.uint8)
    mixed, _ = DMixup(num_classes=4, k=3, alpha=1.0, generator=_gen(1))(x, torch.zeros(8, dtype=torch.long))
    ref, _ = DMixup(num_classes=4, k=3, alpha=1.0, generator=_gen(1))(x.float(), torch.zeros(8, dtype=torch.long))
    assert torch.equal(mixed, ref.round().clamp(0, 255).to(torch.uint8))


@pytest.mark.parametrize("first, second", [(DCutMix, DMixup), (DMixup, DCutMix), (SaliencyDCutMix, DCutMix)])
def test_soft_labels_chain_through_a_second_mixer(first, second):
    x, y = torch.rand(16, 3, 16, 16, generator=_gen(0)), torch.randint(0, 5, (16,), generator=_gen(1))
    x1, y1 = first(num_classes=5, k=3, alpha=0.5, generator=_gen(2))(x, y)
    mix2 = second(num_classes=5, k=2, alpha=1.0, generator=_gen(3))
    params = mix2.sample_params(x1)
    x2, y2 = second(num_classes=5, k=2, alpha=1.0, generator=_gen(3))(x1, y1)
    torch.testing.assert_close(y2.sum(1), torch.ones(16), atol=1e-6, rtol=0)
    weights = params.phi if params.boxes is None else __import__("kmix").mix.slot_weights(params.boxes, 16, 16)
    expected = sum(weights[:, j, None].float() * y1[params.index[:, j]] for j in range(2))
    torch.testing.assert_close(y2, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mixer_cls", MIXERS)
def test_same_seed_same_output_other_seed_other_output(mixer_cls):
    x, y = torch.rand(16, 3, 16, 16, generator=_gen(0)), torch.randint(0, 5, (16,), generator=_gen(1))
    a = mixer_cls(num_classes=5, k=3, alpha=0.5, p=0.7, generator=_gen(9))
    b = mixer_cls(num_classes=5, k=3, alpha=0.5, p=0.7, generator=_gen(9))
    c = mixer_cls(num_classes=5, k=3, alpha=0.5, p=0.7, generator=_gen(10))
    outs_a = [a(x, y) for _ in range(5)]
    outs_b = [b(x, y) for _ in range(5)]
    outs_c = [c(x, y) for _ in range(5)]
    for (xa, ya), (xb, yb) in zip(outs_a, outs_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert any(not torch.equal(xa, xc) for (xa, _), (xc, _) in zip(outs_a, outs_c))


@pytest.mark.parametrize("mixer_cls", MIXERS)
def test_p_zero_returns_the_batch_with_smoothed_one_hot_labels(mixer_cls):
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    mixed, soft = mixer_cls(num_classes=5, k=3, p=0.0, label_smoothing=0.1)(x, y)
    assert torch.equal(mixed, x)
    expected = F.one_hot(y, 5).float() * 0.9 + 0.1 / 5
    torch.testing.assert_close(soft, expected)


def test_p_is_the_probability_that_a_batch_is_mixed():
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    mix = DMixup(num_classes=4, k=2, alpha=1.0, p=0.3, generator=_gen(4))
    trials = 2000
    mixed = sum(not torch.equal(mix(x, y)[0], x) for _ in range(trials))
    sd = math.sqrt(trials * 0.3 * 0.7)
    assert abs(mixed - 0.3 * trials) < 5 * sd, mixed


def test_label_smoothing_is_applied_before_mixing():
    """Each image's one-hot label becomes 0.85 / 0.05 (eps=0.2 over 4 classes), then the mixed target
    is the pixel-fraction-weighted sum of those rows: 0.05 + 0.8 * (fraction of pixels from class c)."""
    x, y = torch.rand(8, 3, 8, 8, generator=_gen(1)), torch.arange(8) % 4
    _, soft = DCutMix(num_classes=4, k=3, alpha=1.0, label_smoothing=0.2, generator=_gen(0))(x, y)
    params = DCutMix(num_classes=4, k=3, alpha=1.0, generator=_gen(0)).sample_params(x)
    weights = slot_weights(params.boxes, 8, 8)
    for n in range(8):
        from_class = [0.0] * 4
        for j in range(3):
            from_class[int(y[params.index[n, j]])] += float(weights[n, j])
        expected = [0.05 + 0.8 * f for f in from_class]
        assert soft[n].tolist() == pytest.approx(expected, abs=1e-6), n
    assert (soft.max(1).values < 0.85 - 1e-3).any(), "no row was mixed from two classes"
    # a batch of one class: every mixed row is that class's smoothed one-hot, whatever the boxes
    _, same = DCutMix(num_classes=4, k=3, alpha=1.0, label_smoothing=0.2, generator=_gen(0))(x, torch.full((8,), 2))
    assert same.tolist() == [pytest.approx([0.05, 0.05, 0.85, 0.05], abs=1e-6)] * 8


def test_alpha_may_be_a_sequence_of_k_values():
    mix = DCutMix(num_classes=3, k=3, alpha=[0.1, 1.0, 5.0], generator=_gen(0))
    phi = mix.sample_params(torch.rand(4000, 1, 4, 4)).phi
    torch.testing.assert_close(phi.mean(0), torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64) / 6.1, atol=0.01, rtol=0)


BAD_ARGS = [
    (dict(k=1), ValueError, "k must be"),
    (dict(k=2.5), ValueError, "k must be"),
    (dict(alpha=0.0), ValueError, "alpha must be positive"),
    (dict(alpha=-1.0), ValueError, "alpha must be positive"),
    (dict(alpha=float("nan")), ValueError, "alpha must be positive"),
    (dict(k=3, alpha=[1.0, 1.0]), ValueError, "alpha must have k=3 values"),
    (dict(alpha="abc"), TypeError, "alpha must be a float or a sequence"),
    (dict(k=2, alpha=[1.0, "x"]), TypeError, "alpha must be a float or a sequence"),
    (dict(p=1.5), ValueError, "p must be in"),
    (dict(p=-0.1), ValueError, "p must be in"),
    (dict(num_classes=0), ValueError, "num_classes"),
    (dict(label_smoothing=1.0), ValueError, "label_smoothing"),
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    (dict(generator="seed"), TypeError, "generator"),
]


@pytest.mark.parametrize("mixer_cls", MIXERS)
@pytest.mark.parametrize("kwargs, err, match", BAD_ARGS)
def test_bad_constructor_arguments_raise_clear_errors(mixer_cls, kwargs, err, match):
    args = dict(num_classes=10, k=2, alpha=1.0)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        mixer_cls(**args)


BAD_CALLS = [
    (torch.rand(3, 8, 8), torch.zeros(3, dtype=torch.long), ValueError, "x must be 4-D"),
    (torch.rand(1, 3, 8, 8), torch.zeros(1, dtype=torch.long), ValueError, "batch of 1"),
    (torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 10]), ValueError, "label 10 out of range"),
    (torch.rand(4, 3, 8, 8), torch.tensor([0, -1, 2, 3]), ValueError, "label -1 out of range"),
    (torch.rand(4, 3, 8, 8), torch.zeros(5, dtype=torch.long), ValueError, "5 labels but x has 4"),
    (torch.rand(4, 3, 8, 8), torch.rand(4, 3), ValueError, r"shape \(4, 10\)"),
    (torch.rand(4, 3, 8, 8), torch.zeros(4), TypeError, "integer"),
    (torch.rand(4, 3, 8, 8), torch.zeros(4, 2, 2), ValueError, "y must be"),
    (torch.zeros(4, 3, 8, 8, dtype=torch.int32), torch.zeros(4, dtype=torch.long), TypeError, "float or uint8"),
    ([1, 2], torch.zeros(2, dtype=torch.long), TypeError, "x must be a torch.Tensor"),
]


@pytest.mark.parametrize("mixer_cls", MIXERS)
@pytest.mark.parametrize("x, y, err, match", BAD_CALLS)
def test_bad_batches_raise_clear_errors(mixer_cls, x, y, err, match):
    with pytest.raises(err, match=match):
        mixer_cls(num_classes=10, k=2)(x, y)


def test_dmixup_refuses_a_mask():
    with pytest.raises(ValueError, match="mask"):
        DMixup(num_classes=3)(torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), mask=torch.zeros(4, 8, 8))


@pytest.mark.parametrize("mixer_cls", [DCutMix, SaliencyDCutMix])
def test_mask_with_the_wrong_shape_is_refused(mixer_cls):
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 8, 8\)"):
        mixer_cls(num_classes=3)(torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), mask=torch.zeros(4, 8, 7))


def test_mix_collate_mixes_dataloader_batches():
    """Every loader batch is mixed: images change, and each soft label equals the fraction of the
    image's pixels copied from each class (read from the pixels, not from the mixer's draws)."""
    images, labels = torch.rand(20, 3, 8, 8, generator=_gen(1)), torch.arange(20) % 5
    loader = DataLoader(TensorDataset(images, labels), batch_size=10,
                        collate_fn=MixCollate(DCutMix(num_classes=5, k=3, generator=_gen(0))))
    batches = 0
    for b, (x, y_soft) in enumerate(loader):
        source, source_y = images[10 * b:10 * (b + 1)], labels[10 * b:10 * (b + 1)]
        assert x.shape == (10, 3, 8, 8) and y_soft.shape == (10, 5)
        # frac[n, m]: fraction of output image n's pixels equal to source image m's pixel there
        frac = (x[:, None] == source[None]).all(dim=2).flatten(2).float().mean(2)
        torch.testing.assert_close(frac.sum(1), torch.ones(10))  # every pixel comes from one source image
        torch.testing.assert_close(y_soft, frac @ F.one_hot(source_y, 5).float(), atol=1e-6, rtol=0)
        mixed_rows = int((frac.diagonal() < 1).sum())
        assert mixed_rows >= 5, f"batch {b}: only {mixed_rows} of 10 images were mixed"
        batches += 1
    assert batches == 2


def test_soft_target_cross_entropy_equals_cross_entropy_on_one_hot():
    logits, y = torch.randn(6, 4, generator=_gen(0)), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = SoftTargetCrossEntropy()
    torch.testing.assert_close(loss(logits, F.one_hot(y, 4).float()), F.cross_entropy(logits, y))
    per = SoftTargetCrossEntropy(reduction="none")(logits, F.one_hot(y, 4).float())
    torch.testing.assert_close(per, F.cross_entropy(logits, y, reduction="none"))
    with pytest.raises(ValueError, match="reduction"):
        SoftTargetCrossEntropy(reduction="avg")
    with pytest.raises(ValueError, match="shape"):
        loss(logits, torch.zeros(6, 5))


def test_repr_names_the_settings():
    assert "k=5" in repr(DCutMix(num_classes=10, k=5, alpha=0.2)) and "alpha=0.2" in repr(DCutMix(num_classes=10, k=5, alpha=0.2))
