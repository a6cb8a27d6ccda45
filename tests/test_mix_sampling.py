"""Laws of the sampled parameters: Dirichlet moments, Beta for K=2, partners, stick-breaking, nesting."""
from __future__ import annotations

import math

import pytest
import torch

from kmix.mix import box_sizes, place_boxes, sample_boxes, sample_dirichlet, sample_partners, stick_breaking


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("alpha", [(0.2, 0.2, 0.2, 0.2, 0.2), (0.2, 0.5, 1.0, 3.0), (1 / 3, 1 / 3, 1 / 3), (5.0, 0.05)])
def test_dirichlet_mean_and_variance_match_within_standard_errors(alpha):
    n = 200_000
    a = torch.tensor(alpha, dtype=torch.float64)
    phi = sample_dirichlet(n, a, _gen(1)).double()
    a0 = a.sum()
    mean, var = a / a0, a * (a0 - a) / (a0 ** 2 * (a0 + 1))
    emp_mean, emp_var = phi.mean(0), phi.var(0)
    se_mean = (var / n).sqrt()
    centred = phi - emp_mean
    se_var = (((centred ** 4).mean(0) - emp_var ** 2) / n).sqrt()
    assert torch.all((emp_mean - mean).abs() < 5 * se_mean), (emp_mean, mean)
    assert torch.all((emp_var - var).abs() < 5 * se_var), (emp_var, var)


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (0.2, 0.2), (0.5, 2.0)])
def test_k2_proportion_is_beta_by_ks_test(a, b):
    stats = pytest.importorskip("scipy.stats")
    phi = sample_dirichlet(20_000, torch.tensor([a, b], dtype=torch.float64), _gen(2))
    result = stats.kstest(phi[:, 0].double().numpy(), stats.beta(a, b).cdf)
    assert result.pvalue > 1e-3, result
    # and the test has power: a wrong Beta is rejected
    assert stats.kstest(phi[:, 0].double().numpy(), stats.beta(a * 2, b).cdf).pvalue < 1e-6


def test_dirichlet_rows_are_valid_even_for_tiny_alpha():
    phi = sample_dirichlet(10_000, torch.full((5,), 0.01, dtype=torch.float64), _gen(3))
    assert torch.isfinite(phi).all()
    assert (phi >= 0).all()
    torch.testing.assert_close(phi.sum(1), torch.ones(10_000, dtype=phi.dtype), atol=1e-9, rtol=0)


def test_dirichlet_is_reproducible_for_a_seed():
    a = torch.full((3,), 0.5, dtype=torch.float64)
    assert torch.equal(sample_dirichlet(100, a, _gen(7)), sample_dirichlet(100, a, _gen(7)))
    assert not torch.equal(sample_dirichlet(100, a, _gen(7)), sample_dirichlet(100, a, _gen(8)))


@pytest.mark.parametrize("n, k", [(2, 2), (3, 5), (64, 5), (257, 9)])
def test_partner_columns_are_permutations_without_fixed_points(n, k):
    idx = sample_partners(n, k, _gen(n))
    assert idx.shape == (n, k)
    assert torch.equal(idx[:, 0], torch.arange(n))
    for j in range(1, k):
        assert torch.equal(idx[:, j].sort().values, torch.arange(n))
        assert (idx[:, j] != torch.arange(n)).all()


def test_partners_are_spread_over_the_batch():
    # every other image should be a partner of image 0 about equally often
    counts = torch.zeros(8)
    g = _gen(5)
    for _ in range(4000):
        counts += torch.bincount(sample_partners(8, 2, g)[0, 1:], minlength=8).float()
    assert counts[0] == 0
    expected = 4000 / 7
    assert ((counts[1:] - expected).abs() < 5 * math.sqrt(expected)).all(), counts


def test_stick_breaking_matches_the_paper_formula():
    phi = sample_dirichlet(50, torch.full((5,), 0.7, dtype=torch.float64), _gen(9)).double()
    v = stick_breaking(phi)
    for k in range(4):
        expected = phi[:, k] / torch.prod(1 - v[:, :k], dim=1)
        torch.testing.assert_close(v[:, k], expected.clamp(0, 1))
    # the stick is used up consistently: prod(1 - v) is what is left for the last image
    torch.testing.assert_close(torch.prod(1 - v, dim=1), phi[:, -1], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("h, w", [(32, 32), (17, 29), (224, 224)])
def test_box_sizes_follow_rounded_sqrt_rule(h, w):
    phi = sample_dirichlet(200, torch.full((5,), 0.4, dtype=torch.float64), _gen(h))
    sizes = box_sizes(phi, h, w)
    v = stick_breaking(phi.double())
    parent = torch.tensor([h, w]).expand(200, 2)
    for k in range(4):
        expected = torch.minimum(torch.round(parent.double() * torch.sqrt(1 - v[:, k, None])), parent.double()).long()
        assert torch.equal(sizes[:, k], expected)
        parent = sizes[:, k]


@pytest.mark.parametrize("k", [2, 3, 5, 9])
def test_boxes_are_nested_inside_their_parents(k):
    h, w = 31, 40
    phi = sample_dirichlet(500, torch.full((k,), 0.5, dtype=torch.float64), _gen(k))
    boxes = sample_boxes(phi, h, w, _gen(k + 100))
    outer = torch.tensor([0, 0, h, w]).expand(500, 4)
    for j in range(k - 1):
        b = boxes[:, j]
        assert (b[:, 0] >= outer[:, 0]).all() and (b[:, 1] >= outer[:, 1]).all()
        assert (b[:, 2] <= outer[:, 2]).all() and (b[:, 3] <= outer[:, 3]).all()
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
        outer = b


def test_box_position_is_uniform_inside_the_parent():
    # one box of fixed size 4 in a 10-wide image: 7 possible offsets, each ~1/7
    sizes = torch.full((70_000, 1, 2), 4, dtype=torch.long)
    uniform = torch.rand(70_000, 1, 2, dtype=torch.float64, generator=_gen(11))
    boxes = place_boxes(sizes, 10, 10, uniform)
    counts = torch.bincount(boxes[:, 0, 0], minlength=7).double()
    assert counts.numel() == 7
    assert ((counts - 10_000).abs() < 5 * math.sqrt(10_000)).all(), counts


def test_centred_boxes_are_clamped_inside_their_parent():
    sizes = torch.tensor([[[6, 6], [2, 2]]])
    centers = torch.tensor([[[0, 0], [20, 20]]])  # far outside: must clamp
    boxes = place_boxes(sizes, 16, 16, None, centers=centers)
    assert boxes.tolist() == [[[0, 0, 6, 6], [4, 4, 6, 6]]]
    centers = torch.tensor([[[8, 8], [8, 8]]])
    boxes = place_boxes(sizes, 16, 16, None, centers=centers)
    assert boxes.tolist() == [[[5, 5, 11, 11], [7, 7, 9, 9]]]


def test_dirichlet_takes_an_n_by_k_concentration_whatever_its_dtype_or_layout():
    """The mixers pass a cached (n, K) concentration; any 2-D one is used as is, never flattened (a
    'cuda' generator vs a 'cuda:0' tensor once sent it down the (K,) path: (n, n*K) proportions)."""
    from kmix.mix.sampling import sample_dirichlet

    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base = torch.full((6, 3), 0.5, dtype=torch.float64)
    ref = sample_dirichlet(6, torch.tensor([0.5, 0.5, 0.5]), gen())
    for conc in (base, base.float(), base.T.contiguous().T):
        phi = sample_dirichlet(6, conc, gen())
        assert phi.shape == (6, 3) and torch.equal(phi, ref)
