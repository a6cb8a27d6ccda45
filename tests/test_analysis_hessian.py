"""Hessian tools against closed forms: linear least squares has H = 2 X^T X / n exactly."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.analysis.hessian import LossOnData, hutchinson_trace, top_eigenpairs, vdot


def quadratic_problem(seed: int = 0, n: int = 96, d: int = 7):
    gen = torch.Generator().manual_seed(seed)
    scales = torch.tensor([4.0, 2.5, 1.5, 1.0, 0.7, 0.4, 0.2])[:d]
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) * scales
    y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    batches = [(X[:50], y[:50]), (X[50:], y[50:])]  # uneven batches: the mean must be weighted by size
    return LossOnData(model, batches, criterion=F.mse_loss), 2 * X.T @ X / n


def test_top_eigenvalues_match_closed_form():
    loss, H = quadratic_problem()
    exact = torch.linalg.eigvalsh(H).flip(0)
    values, vectors = top_eigenpairs(loss, k=3, iters=1000, tol=1e-10)
    assert values == pytest.approx(exact[:3].tolist(), rel=1e-6)
    # unit, mutually orthogonal, and eigenvectors: residual |H v - lambda v| small (the Rayleigh quotient
    # converges quadratically faster than the vector, hence the looser tolerance here)
    for i, v in enumerate(vectors):
        assert vdot(v, v) == pytest.approx(1.0, abs=1e-9)
        hv = H @ v[0].reshape(-1)
        assert float((hv - values[i] * v[0].reshape(-1)).norm()) < 1e-3 * values[i]
        for u in vectors[:i]:
            assert abs(vdot(u, v)) < 1e-6


def test_hvp_matches_full_hessian_of_a_nonlinear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss = LossOnData(model, [(x[:7], y[:7]), (x[7:], y[7:])])
    shapes = [p.shape for p in loss.params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in loss.params])

    def f(flat):
        parts, i = {}, 0
        for name, s in zip(loss.names, shapes):
            parts[name] = flat[i:i + s.numel()].view(s)
            i += s.numel()
        return F.cross_entropy(torch.func.functional_call(model, parts, (x,)), y)

    H = torch.autograd.functional.hessian(f, flat0)
    v = torch.randn(flat0.numel(), dtype=torch.float64)
    vs, i = [], 0
    for s in shapes:
        vs.append(v[i:i + s.numel()].view(s))
        i += s.numel()
    hv = torch.cat([h.reshape(-1) for h in loss.hvp(vs)])
    assert torch.allclose(hv, H @ v, atol=1e-10)


def test_hutchinson_trace_close_to_exact_trace():
    loss, H = quadratic_problem(seed=1)
    mean, stderr = hutchinson_trace(loss, samples=400, seed=0)
    exact = float(H.trace())
    assert abs(mean - exact) < 4 * stderr + 1e-9
    assert stderr < 0.1 * exact  # and the estimate is actually informative


def test_evaluate_does_not_touch_the_model_and_matches_direct_loss():
    loss, _ = quadratic_problem()
    before = [p.detach().clone() for p in loss.params]
    X = torch.cat([x for x, _ in loss.batches])
    y = torch.cat([t for _, t in loss.batches])
    value, _ = loss.evaluate()
    assert value == pytest.approx(float(F.mse_loss(loss.model(X), y).detach()), rel=1e-12)
    shifted = [p.detach() + 1.0 for p in loss.params]
    w = shifted[0]
    assert loss.evaluate(shifted)[0] == pytest.approx(float(F.mse_loss(X @ w.T, y)), rel=1e-12)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, loss.params))


def test_bad_arguments():
    loss, _ = quadratic_problem()
    with pytest.raises(ValueError, match="k="):
        top_eigenpairs(loss, k=0)
    with pytest.raises(ValueError, match="samples"):
        hutchinson_trace(loss, samples=0)
    with pytest.raises(ValueError, match="batches"):
        LossOnData(nn.Linear(2, 1), [])


def test_pyhessian_oracle_if_installed():
    pyhessian = pytest.importorskip("pyhessian")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    ours, _ = top_eigenpairs(LossOnData(model, [(x, y)]), k=1, iters=500, tol=1e-8)
    theirs, _ = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(
        maxIter=500, tol=1e-8, top_n=1)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-3)
