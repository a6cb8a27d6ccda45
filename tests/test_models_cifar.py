"""CIFAR model families: parameter counts against the papers, shapes, small inputs, channels_last, grads."""
from __future__ import annotations

import pytest
import torch

from kmix.models import build_model, list_models
from kmix.models.pyramidnet import pyramid_widths

CIFAR_MODELS = ("pyramidnet110", "pyramidnet200", "preact_resnet18", "wrn16_8", "resnext29_4x24d",
                "resnet20", "resnet32", "resnet56", "resnet110")
# forwards use a shallow PyramidNet (same unit code; oneDNN compiles a kernel per distinct conv shape,
# ~4 s for PyramidNet-110's 100+ shapes) and run PyramidNet-110 itself once, in the backward test
CHEAP_MODELS = {
    "pyramidnet29": ("pyramidnet", dict(depth=29, alpha=24)),
    "preact_resnet18": ("preact_resnet18", {}),
    "wrn16_8": ("wrn16_8", {}),
    "resnext29_4x24d": ("resnext29_4x24d", {}),
    "resnet20": ("resnet20", {}),
}
BACKWARD_MODELS = {**CHEAP_MODELS, "pyramidnet110": ("pyramidnet110", {})}
del BACKWARD_MODELS["pyramidnet29"]


def n_params(name: str, **kwargs) -> int:
    """Parameter count without allocating or initialising weights (meta device)."""
    with torch.device("meta"):
        model = build_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


# (name, kwargs, published count, source); the counts include the classifier
PUBLISHED = [
    ("pyramidnet200", dict(num_classes=100), 26.8e6, "CutMix paper Tab. 3, PyramidNet-200 a=240, CIFAR-100"),
    ("pyramidnet", dict(num_classes=10, depth=272, alpha=200), 26.0e6, "Han et al. Tab. 4, bottleneck 272 a=200"),
    ("pyramidnet", dict(num_classes=10, depth=110, alpha=48, bottleneck=False), 1.7e6, "Han et al. Tab. 4, basic 110 a=48"),
    ("pyramidnet", dict(num_classes=10, depth=110, alpha=270, bottleneck=False), 28.3e6, "Han et al. Tab. 4, basic 110 a=270"),
    ("pyramidnet110", dict(num_classes=100), 1.7e6, "CutMix paper ablation, PyramidNet-110 a=64"),
    ("preact_resnet18", dict(num_classes=100), 11.2e6, "PreActResNet-18 for CIFAR-100 (Mixup/CutMix baselines)"),
    ("wrn16_8", dict(num_classes=10), 11.0e6, "Zagoruyko & Komodakis Tab. 4/5, WRN-16-8"),
    ("wide_resnet", dict(num_classes=10, depth=28, widen=10), 36.5e6, "Zagoruyko & Komodakis, WRN-28-10"),
    ("resnext", dict(num_classes=10, cardinality=8, base_width=64), 34.4e6, "Xie et al. Tab. 7, ResNeXt-29 8x64d"),
    ("resnext", dict(num_classes=10, cardinality=16, base_width=64), 68.1e6, "Xie et al. Tab. 7, ResNeXt-29 16x64d"),
    ("resnet20", dict(num_classes=10), 0.27e6, "He et al. 2016 Tab. 6, ResNet-20"),
    ("resnet32", dict(num_classes=10), 0.46e6, "He et al. 2016 Tab. 6, ResNet-32"),
    ("resnet44", dict(num_classes=10), 0.66e6, "He et al. 2016 Tab. 6, ResNet-44"),
    ("resnet56", dict(num_classes=10), 0.85e6, "He et al. 2016 Tab. 6, ResNet-56"),
    ("resnet110", dict(num_classes=10), 1.7e6, "He et al. 2016 Tab. 6, ResNet-110"),
]


@pytest.mark.parametrize("name, kwargs, published, source", PUBLISHED, ids=[p[3] for p in PUBLISHED])
def test_parameter_counts_match_the_papers(name, kwargs, published, source):
    # the papers round to 0.1M: allow that plus ~2% slack
    assert abs(n_params(name, **kwargs) - published) <= 0.02 * published + 0.05e6


def test_exact_counts_we_report():
    # pinned so that an accidental architecture change shows up (numbers quoted in docs/data_models.md)
    assert n_params("pyramidnet200", num_classes=100) == 26_844_952
    assert n_params("pyramidnet110", num_classes=100) == 1_725_300
    assert n_params("preact_resnet18", num_classes=100) == 11_218_340
    assert n_params("wrn16_8", num_classes=100) == 11_007_540
    assert n_params("resnext29_4x24d", num_classes=100) == 4_937_252
    # option A (the paper's CIFAR nets; also akamaster/pytorch_resnet_cifar10's printed counts). Option B's
    # 1x1-conv+BN projections at the two downsampling blocks would add 2,752 (272,474 for ResNet-20).
    assert n_params("resnet20", num_classes=10) == 269_722
    assert n_params("resnet32", num_classes=10) == 464_154
    assert n_params("resnet44", num_classes=10) == 658_586
    assert n_params("resnet56", num_classes=10) == 853_018
    assert n_params("resnet110", num_classes=10) == 1_727_962


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 8])
def test_cifar_resnet_count_is_the_option_a_formula(depth):
    """Counted by hand from the paper's description: stem, 3 stages of n blocks (two 3x3 convs + two BNs),
    no shortcut parameters, FC; any depth 6n+2 through the generic builder."""
    n, c = (depth - 2) // 6, (16, 32, 64)
    block = lambda cin, cout: 9 * cin * cout + 9 * cout * cout + 4 * cout  # noqa: E731
    expected = 27 * 16 + 2 * 16 + 10 * 64 + 10
    for i, width in enumerate(c):
        expected += block(c[max(i - 1, 0)], width) + (n - 1) * block(width, width)
    assert n_params("cifar_resnet", num_classes=10, depth=depth) == expected


def test_cifar_resnet_option_a_shortcut_subsamples_and_zero_pads():
    from kmix.models.cifar_resnet import BasicBlock

    block = BasicBlock(16, 32, stride=2)
    x = torch.rand(2, 16, 8, 8)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 4, 4)
    assert torch.equal(short[:, :16], x[:, :, ::2, ::2]) and not short[:, 16:].any()
    assert torch.equal(BasicBlock(16, 16, stride=1).shortcut(x), x)
    model = build_model("resnet20", num_classes=10)
    assert not any(m.kernel_size == (1, 1) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="depth must be 6n\\+2.*depth=21"):
        build_model("cifar_resnet", num_classes=10, depth=21)


def test_pyramid_widths_grow_additively():
    widths = pyramid_widths(110, 64, bottleneck=True)  # 12 units per stage
    assert len(widths) == 36 and widths[0] == round(16 + 64 / 36) and widths[-1] == 16 + 64
    assert all(b >= a for a, b in zip(widths, widths[1:]))
    assert pyramid_widths(200, 240, bottleneck=True)[-1] == 256  # final features 4 * 256 = 1024
    with pytest.raises(ValueError, match="depth must be 9n\\+2.*depth=111"):
        pyramid_widths(111, 64, bottleneck=True)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        pyramid_widths(110, 0, bottleneck=True)


def test_registered_and_bad_arguments():
    assert set(CIFAR_MODELS) <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'pyramidnet999'.*pyramidnet110"):
        build_model("pyramidnet999", num_classes=10)
    with pytest.raises(ValueError, match="depth must be 6n\\+4"):
        build_model("wide_resnet", num_classes=10, depth=15)
    with pytest.raises(ValueError, match="cardinality must be a positive int"):
        build_model("resnext", num_classes=10, cardinality=0)
    with pytest.raises(TypeError):
        build_model("wrn16_8", num_classes=10, widen=4)  # fixed-shape builders take no shape kwargs


@pytest.mark.parametrize("key", CHEAP_MODELS)
def test_shapes_for_cifar_and_digits_inputs(key):
    name, kwargs = CHEAP_MODELS[key]
    torch.manual_seed(0)
    rgb = build_model(name, num_classes=100, **kwargs).eval()
    with torch.no_grad():
        assert rgb(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    grey = build_model(name, num_classes=10, in_chans=1, **kwargs).eval()
    with torch.no_grad():
        out = grey(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("key", [
    pytest.param(k, marks=pytest.mark.slow) if k == "pyramidnet110" else k for k in BACKWARD_MODELS
])
def test_forward_backward_reaches_every_parameter(key):
    name, kwargs = BACKWARD_MODELS[key]
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_chans=1, **kwargs).train()
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([3, 7])
    logits = model(x)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    # the classifier always gets a nonzero gradient
    assert model.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("key", CHEAP_MODELS)
def test_channels_last_gives_the_same_logits(key):
    name, kwargs = CHEAP_MODELS[key]
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_chans=1, **kwargs).eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_pyramidnet200_builds_on_meta_with_the_right_head():
    with torch.device("meta"):
        model = build_model("pyramidnet200", num_classes=10, in_chans=1)
    assert model.fc.in_features == 1024 and model.stem[0].in_channels == 1
    assert len(model.units) == 66  # 22 bottleneck units per stage
