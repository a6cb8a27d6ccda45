"""The field's Mixup and CutMix against the field's own implementations (torchvision v2's `CutMix`/`MixUp`,
timm's `Mixup`, and Yun et al.'s box rule written from the CutMix paper's code description): the
partner's label weight has the same distribution (two-sample KS tests over 20,000 draws, at 32x32 and
at the odd size 37x45), and the paper's K=2 DCutMix, a different mixer, fails the same tests by far.
Labels are exact pixel fractions; bad arguments are one-line errors.

timm >= 1.0 changed one detail of the box: it spans centre - side//2 .. centre + (side+1)//2 (odd sides
kept), where Yun's code and torchvision span centre -+ side//2. kmix follows Yun; against such a timm
the CutMix test bounds the KS distance (measured 0.03-0.04) instead of testing equality.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch

from kmix import CutMix, DCutMix, DMixup, Mixup

stats = pytest.importorskip("scipy.stats", reason="scipy (the test extra) runs the KS tests")

DRAWS = 20_000
SIZES = [(32, 32), (37, 45)]
KS_P = 1e-3  # same law: p-values are uniform, so a fixed-seed test fails by chance with probability 1e-3


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the partner's label weight, as each implementation's output labels give it -------------------
def kmix_weights(mixer, size, draws: int) -> np.ndarray:
    """Partner label weights from kmix's output labels: one per batch in batch mode, one per sample in elem.

    Images are labelled 0..n-1; a sample whose partner is itself (a plain permutation allows it) tells
    nothing about its weight and is skipped (which is independent of lambda, so the law is unchanged)."""
    h, w = size
    per_call = 4 if getattr(mixer, "mode", "elem") == "batch" else 500
    x, y = torch.zeros(per_call, 1, h, w), torch.arange(per_call)
    out = []
    while len(out) < draws:
        params = mixer.sample_params(x)
        _, soft = mixer.apply(x, torch.eye(per_call), params)
        partner = params.index[:, 1]
        moved = (partner != y).nonzero().flatten().tolist()
        picks = moved[:1] if getattr(mixer, "mode", "elem") == "batch" else moved
        out += [float(soft[i, partner[i]]) for i in picks]
    return np.asarray(out[:draws])


def timm_weights(size, draws: int, *, cutmix: bool, mode: str, seed: int) -> np.ndarray:
    """Partner label weights from timm's Mixup (correct_lam=True), which pairs sample i with n-1-i."""
    timm_mix = pytest.importorskip("timm.data.mixup", reason="timm (the test extra) is the oracle")
    np.random.seed(seed)  # timm draws with numpy's global generator
    n = 2 if mode == "batch" else 1000
    fn = timm_mix.Mixup(mixup_alpha=0.0 if cutmix else 1.0, cutmix_alpha=1.0 if cutmix else 0.0, prob=1.0,
                        switch_prob=0.0, mode=mode, correct_lam=True, label_smoothing=0.0, num_classes=n)
    out = []
    y = torch.arange(n)
    while len(out) < draws:
        _, target = fn(torch.zeros(n, 1, *size), y.clone())
        out += target[0:1, n - 1].tolist() if mode == "batch" else target[torch.arange(n), n - 1 - y].tolist()
    return np.asarray(out[:draws])


def torchvision_weights(size, draws: int, *, cutmix: bool, seed: int) -> np.ndarray:
    """Partner label weights from torchvision v2's CutMix / MixUp (one lambda per batch; partner = roll by 1)."""
    v2 = pytest.importorskip("torchvision.transforms.v2", reason="torchvision v2 is the oracle")
    torch.manual_seed(seed)  # torchvision draws with torch's global generator
    fn = (v2.CutMix if cutmix else v2.MixUp)(num_classes=2, alpha=1.0)
    x, y = torch.zeros(2, 1, *size), torch.arange(2)
    return np.asarray([float(fn(x, y)[1][0, 1]) for _ in range(draws)])


def yun_weights(size, draws: int, seed: int) -> np.ndarray:
    """Yun et al.'s rule, written from the CutMix paper's code: lambda ~ Beta(1, 1); cut = int(side * sqrt(1 - lambda));
    centre uniform over the pixels; box = clip(centre -+ cut // 2); the partner's weight is the box's area."""
    rng = np.random.RandomState(seed)
    h, w = size
    lam = rng.beta(1.0, 1.0, size=draws)
    cut_h, cut_w = (h * np.sqrt(1 - lam)).astype(int), (w * np.sqrt(1 - lam)).astype(int)
    cy, cx = rng.randint(h, size=draws), rng.randint(w, size=draws)
    y0, y1 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    x0, x1 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    return (y1 - y0) * (x1 - x0) / (h * w)


def timm_keeps_odd_sides() -> bool:
    """Whether the installed timm's CutMix box has side `cut` (timm >= 1.0) rather than 2 * (cut // 2) (Yun's code)."""
    timm_mix = pytest.importorskip("timm.data.mixup", reason="timm (the test extra) is the oracle")
    cut = 3  # lam such that int(32 * sqrt(1 - lam)) == 3
    yl, yh, _, _ = timm_mix.rand_bbox((32, 32), 1 - (3.5 / 32) ** 2, count=500)
    return int((yh - yl).max()) == cut


@lru_cache(maxsize=None)
def cached(source: str, size: tuple[int, int], mode: str = "batch", cutmix: bool = True) -> np.ndarray:
    """The 20,000 draws of one implementation, computed once per test process. CutMix weights are
    returned as fractions of whole pixels (area / (H * W) in float64), so that float32 labels (37x45:
    1/1665 is not exact in float32) do not make equal areas look different to the KS test."""
    if source == "kmix":
        w = kmix_weights((CutMix if cutmix else Mixup)(2, alpha=1.0, mode=mode, generator=_gen(1)), size, DRAWS)
    elif source == "timm":
        w = timm_weights(size, DRAWS, cutmix=cutmix, mode=mode, seed=2)
    elif source == "torchvision":
        w = torchvision_weights(size, DRAWS, cutmix=cutmix, seed=3)
    elif source == "yun":
        w = yun_weights(size, DRAWS, seed=4)
    else:
        raise ValueError(source)
    pixels = size[0] * size[1]
    return np.rint(w * pixels) / pixels if cutmix else w


def _ks(a: np.ndarray, b: np.ndarray):
    return stats.ks_2samp(a, b)


# --- the oracle tests ------------------------------------------------------------------------------
# (elem mode draws one lambda and one box per sample: each sample's weight has the batch mode's law,
# so torchvision's and Yun's per-batch draws are its oracle too)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_cutmix_matches_torchvision_and_yuns_rule(size, mode):
    ours = cached("kmix", size, mode)
    for oracle in ("torchvision", "yun"):
        result = _ks(ours, cached(oracle, size))
        assert result.pvalue > KS_P, f"{oracle}: KS distance {result.statistic:.3f}, p={result.pvalue:.2g}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_cutmix_matches_timm(size, mode):
    result = _ks(cached("kmix", size, mode), cached("timm", size, mode))
    if timm_keeps_odd_sides():  # one pixel more on odd sides than Yun's box: close, not equal
        assert result.statistic < 0.05, f"KS distance {result.statistic:.3f}"
    else:
        assert result.pvalue > KS_P, f"KS distance {result.statistic:.3f}, p={result.pvalue:.2g}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixup_matches_timm_torchvision_and_the_beta_law(size, mode):
    ours = cached("kmix", size, mode, cutmix=False)
    assert _ks(ours, cached("timm", size, mode, cutmix=False)).pvalue > KS_P
    assert _ks(ours, cached("torchvision", size, cutmix=False)).pvalue > KS_P
    # and the law itself: 1 - lambda ~ Beta(1, 1)
    assert stats.kstest(ours, stats.beta(1.0, 1.0).cdf).pvalue > KS_P


def test_cutmix_partner_weight_figures_at_32px():
    # the figures docs/mixing.md quotes: mean 0.30, sd 0.18, P(>= 0.5) = 0.15 for alpha = 1 at 32x32
    w = cached("kmix", (32, 32), "elem")
    assert abs(w.mean() - 0.30) < 0.01
    assert abs(w.std() - 0.18) < 0.01
    assert abs((w >= 0.5).mean() - 0.15) < 0.01


@pytest.mark.parametrize("size", SIZES)
def test_the_papers_k2_dcutmix_is_not_the_fields_cutmix(size):
    # the same oracle test, run on the mixer kmix's `cutmix` used to be: it must fail, by far
    old = kmix_weights(DCutMix(num_classes=2, k=2, alpha=1.0, generator=_gen(9)), size, DRAWS)
    old = np.rint(old * size[0] * size[1]) / (size[0] * size[1])
    for oracle in ("torchvision", "yun", "timm"):
        result = _ks(old, cached(oracle, size, "elem"))
        assert result.pvalue < 1e-50 and result.statistic > 0.3, f"{oracle}: KS distance {result.statistic:.3f}"
    assert old.mean() > 0.45  # the box fully inside gives the partner half the image on average


def test_the_papers_k2_dmixup_draws_lambda_per_sample():
    # DMixup K=2 draws a lambda per sample: the samples of one batch disagree; the field's Mixup (batch) agrees
    x, y = torch.rand(16, 3, 8, 8), torch.arange(16)
    per_sample = DMixup(num_classes=16, k=2, alpha=1.0, generator=_gen(11)).sample_params(x).phi[:, 0]
    per_batch = Mixup(16, alpha=1.0, generator=_gen(11)).sample_params(x).phi[:, 0]
    assert per_sample.unique().numel() == 16 and per_batch.unique().numel() == 1


# --- exact labels, one box per batch, any dtype and layout -------------------------------------------
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cutmix_labels_are_exact_pixel_fractions(mode, dtype, channels_last):
    n, h, w = 24, 37, 45
    x = torch.arange(n, dtype=dtype).view(n, 1, 1, 1).expand(n, 3, h, w).contiguous()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mixer = CutMix(n, alpha=1.0, mode=mode, generator=_gen(12))
    params = mixer.sample_params(x)
    mixed, soft = mixer.apply(x, torch.eye(n), params)
    assert mixed.dtype == dtype and mixed.is_contiguous(memory_format=torch.channels_last) == channels_last
    counts = torch.stack([(mixed[:, 0] == v).flatten(1).sum(1) for v in range(n)], dim=1)  # (n, n) pixels per image
    torch.testing.assert_close(soft.double(), counts.double() / (h * w), atol=1e-7, rtol=0)
    boxes = params.boxes[:, 0]
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= torch.tensor([h, w]))).all()
    if mode == "batch":  # one box for the whole batch
        assert (boxes == boxes[0]).all()


def test_cutmix_box_may_cross_the_border_where_dcutmix_never_does():
    # clipped boxes: some are cut by the border (smaller than the drawn side); DCutMix keeps the drawn size
    x = torch.zeros(2000, 1, 32, 32)
    params = CutMix(2, alpha=1.0, mode="elem", generator=_gen(13)).sample_params(x)
    box, lam = params.boxes[:, 0], params.phi[:, 0]
    drawn = ((1 - lam).sqrt() * 32).floor().long() // 2 * 2
    kept = box[:, 2] - box[:, 0]
    assert (kept < drawn).float().mean() > 0.3
    assert ((box[:, 0] == 0) | (box[:, 2] == 32)).any()


def test_cutmix_mixes_masks_with_the_same_box():
    n, h, w = 8, 16, 16
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).contiguous()
    mask = torch.arange(n).view(n, 1, 1).expand(n, h, w).contiguous()
    mixed, _, mixed_mask = CutMix(n, generator=_gen(14))(x, torch.arange(n), mask)
    assert torch.equal(mixed[:, 0].long(), mixed_mask)


def test_p_zero_leaves_the_batch_and_p_is_a_per_batch_coin():
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8)
    out, soft = CutMix(8, p=0.0, generator=_gen(15))(x, y)
    assert torch.equal(out, x) and torch.equal(soft, torch.eye(8))
    mixer = Mixup(8, p=0.5, generator=_gen(16))
    mixed = [not torch.equal(mixer(x, y)[0], x) for _ in range(400)]
    assert 0.4 < np.mean(mixed) < 0.6


def test_same_generator_seed_same_mix():
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8)
    for cls in (CutMix, Mixup):
        a = cls(8, mode="elem", generator=_gen(17))(x, y)
        b = cls(8, mode="elem", generator=_gen(17))(x, y)
        assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("cls", [CutMix, Mixup])
@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "pair"}, "mode must be 'batch'"),
    ({"alpha": 0.0}, "alpha must be positive"),
    ({"alpha": -1.0}, "alpha must be positive"),
    ({"p": 1.5}, "p must be in [0, 1]"),
    ({"p": -0.1}, "p must be in [0, 1]"),
])
def test_bad_arguments_are_one_line_errors(cls, kwargs, message):
    with pytest.raises(ValueError) as err:
        cls(10, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_mixup_refuses_a_mask():
    with pytest.raises(ValueError, match="mask cannot be mixed"):
        Mixup(4)(torch.rand(4, 3, 8, 8), torch.arange(4), torch.zeros(4, 8, 8, dtype=torch.long))
