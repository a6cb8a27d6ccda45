"""Partial-channel mixed op (shapes, exactly C/K channels through the ops, shuffle), edge normalisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kmix.models.darts_ops import PRIMITIVES, build_op
from kmix.search.supernet import (PartialMixedOp, SearchCell, SearchNetwork, channel_shuffle, edge_count,
                                  normalised_edge_weights)



@pytest.mark.parametrize("stride, size", [(1, 16), (2, 16), (2, 7), (1, 5)])
def test_partial_mixed_op_keeps_shapes_and_sends_c_over_k_channels(stride, size):
    torch.manual_seed(0)
    c, k = 16, 4
    op = PartialMixedOp(c, stride, partial_k=k)
    seen = []
    for sub in op.ops:
        sub.register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape[1], out.shape[1])))
    x = torch.randn(3, c, size, size)
    out = op(x, torch.softmax(torch.randn(len(PRIMITIVES)), 0))
    expected = (size + stride - 1) // stride
    assert out.shape == (3, c, expected, expected)
    assert len(seen) == len(PRIMITIVES)
    assert all(cin == c // k and cout == c // k for cin, cout in seen)


def test_partial_mixed_op_bypass_and_shuffle_are_exact():
    """With all op weight on skip_connect, the op is a pure channel permutation of its input."""
    c, k = 8, 4
    op = PartialMixedOp(c, 1, partial_k=k)
    w = torch.zeros(len(PRIMITIVES))
    w[PRIMITIVES.index("skip_connect")] = 1.0
    x = torch.randn(2, c, 5, 5)
    out = op(x, w)
    # channel c_out = g * (c/k) + i of the concat goes to position i * k + g
    per = c // k
    for g in range(k):
        for i in range(per):
            assert torch.equal(out[:, i * k + g], x[:, g * per + i])


def test_stride_two_bypass_is_max_pooled():
    c, k = 8, 4
    op = PartialMixedOp(c, 2, partial_k=k)
    w = torch.zeros(len(PRIMITIVES))  # the mixed part is zero: only the bypass remains
    x = torch.randn(2, c, 6, 6)
    out = op(x, w)
    unshuffled = channel_shuffle(out, c // k)  # shuffling with the other factor inverts it
    assert torch.allclose(unshuffled[:, : c // k], torch.zeros(2, c // k, 3, 3))
    assert torch.equal(unshuffled[:, c // k:], F.max_pool2d(x[:, c // k:], 2))


def test_channel_shuffle_inverse():
    x = torch.randn(2, 12, 3, 3)
    assert torch.equal(channel_shuffle(channel_shuffle(x, 4), 3), x)
    assert not torch.equal(channel_shuffle(x, 4), x)


def test_channels_must_divide_by_k():
    with pytest.raises(ValueError, match=r"channels \(6\) must be divisible by partial_k \(4\)"):
        PartialMixedOp(6, 1, partial_k=4)


def test_normalised_edge_weights_are_per_node_softmax():
    steps = 4
    betas = torch.randn(edge_count(steps))
    w = normalised_edge_weights(betas, steps)
    start = 0
    for node in range(steps):
        n_in = node + 2
        block = w[start:start + n_in]
        assert torch.allclose(block.sum(), torch.tensor(1.0))
        assert torch.allclose(block, torch.exp(betas[start:start + n_in]) / torch.exp(betas[start:start + n_in]).sum())
        start += n_in
    assert start == 14
    with pytest.raises(ValueError, match=r"betas must have shape \(14,\)"):
        normalised_edge_weights(torch.zeros(13), steps)


def test_cell_node_is_beta_weighted_sum_of_mixed_ops():
    """Node outputs equal sum_j edge_w[j] * mixed_op_j(state_j, softmax(alpha_j)), computed by hand."""
    torch.manual_seed(0)
    steps, c = 2, 4
    cell = SearchCell(steps, steps, 4, 4, c, reduction=False, reduction_prev=False, partial_k=2).eval()
    n_edges = edge_count(steps)
    op_w = torch.softmax(torch.randn(n_edges, len(PRIMITIVES)), -1)
    edge_w = normalised_edge_weights(torch.randn(n_edges), steps)
    s0, s1 = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    out = cell(s0, s1, op_w, edge_w)
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    n0 = edge_w[0] * cell.edges[0](states[0], op_w[0]) + edge_w[1] * cell.edges[1](states[1], op_w[1])
    states.append(n0)
    n1 = sum(edge_w[2 + j] * cell.edges[2 + j](states[j], op_w[2 + j]) for j in range(3))
    assert torch.allclose(out, torch.cat([n0, n1], 1), atol=1e-6)


def test_supernet_parameter_groups_and_gradients():
    torch.manual_seed(0)
    net = SearchNetwork(10, in_chans=1, channels=8, layers=3)
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert [tuple(p.shape) for p in arch] == [(14, 8), (14, 8), (14,), (14,)]
    assert len(arch) + len(weights) == len(list(net.parameters()))
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    out = net(torch.randn(4, 1, 16, 16))
    assert out.shape == (4, 10)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch)  # alphas and betas get gradients


def test_eval_ops_preserve_channels_and_stride():
    x = torch.randn(2, 6, 9, 9)
    for name in PRIMITIVES:
        for stride in (1, 2):
            assert build_op(name, 6, stride)(x).shape == (2, 6, (9 + stride - 1) // stride, (9 + stride - 1) // stride)
    with pytest.raises(ValueError, match="unknown DARTS op 'conv_9x9'"):
        build_op("conv_9x9", 6, 1)
