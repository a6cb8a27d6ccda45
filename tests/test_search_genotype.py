"""Genotype derivation (top-2 edges, 'none' excluded, deterministic ties), JSON round trip, bad files."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from kmix.models.darts_genotype import Genotype, load_genotype, save_genotype
from kmix.models.darts_ops import PRIMITIVES
from kmix.search.genotype import derive_cell, derive_genotype
from kmix.search.supernet import SearchNetwork, edge_count

STEPS = 4
N_EDGES = edge_count(STEPS)
N_OPS = len(PRIMITIVES)



def _brute_force_cell(op_w: torch.Tensor, edge_w: torch.Tensor) -> list[tuple[str, int]]:
    """Reference: plain loops, best pair of edges per node by strength (lower index on ties)."""
    cell, start = [], 0
    for node in range(STEPS):
        n_in = node + 2
        strengths, ops = [], []
        for j in range(n_in):
            best, best_o = -1.0, None
            for o in range(N_OPS):
                if PRIMITIVES[o] == "none":
                    continue
                if op_w[start + j, o].item() > best:
                    best, best_o = op_w[start + j, o].item(), o
            strengths.append(best * edge_w[start + j].item())
            ops.append(best_o)
        best_pair = max(itertools.combinations(range(n_in), 2),
                        key=lambda p: (sorted([strengths[p[0]], strengths[p[1]]], reverse=True), [-p[0], -p[1]]))
        for j in best_pair:
            cell.append((PRIMITIVES[ops[j]], j))
        start += n_in
    return cell


@pytest.mark.parametrize("seed", range(5))
def test_derivation_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    op_w = torch.softmax(torch.randn(N_EDGES, N_OPS, generator=g) * 3, dim=-1)
    edge_w = torch.rand(N_EDGES, generator=g)
    assert derive_cell(op_w, edge_w, STEPS) == _brute_force_cell(op_w, edge_w)


def test_none_is_never_chosen_and_does_not_count_towards_edge_strength():
    op_w = torch.full((N_EDGES, N_OPS), 0.01)
    edge_w = torch.ones(N_EDGES)
    # node 0 (edges 0, 1) and node 1 (edges 2, 3, 4): edge 2 is dominated by 'none' only
    op_w[2, PRIMITIVES.index("none")] = 0.99
    op_w[3, PRIMITIVES.index("sep_conv_5x5")] = 0.5
    op_w[4, PRIMITIVES.index("dil_conv_3x3")] = 0.4
    op_w[0, PRIMITIVES.index("none")] = 0.9
    op_w[0, PRIMITIVES.index("avg_pool_3x3")] = 0.05
    cell = derive_cell(op_w, edge_w, STEPS)
    assert all(op != "none" for op, _ in cell)
    assert cell[0] == ("avg_pool_3x3", 0)  # best non-none op of the none-dominated edge
    assert cell[2:4] == [("sep_conv_5x5", 1), ("dil_conv_3x3", 2)]  # edge 2's 'none' weight is ignored


def test_edge_weights_multiply_op_weights():
    op_w = torch.full((N_EDGES, N_OPS), 0.1)
    op_w[:, PRIMITIVES.index("sep_conv_3x3")] = 0.3
    edge_w = torch.ones(N_EDGES)
    edge_w[2:5] = torch.tensor([0.2, 0.5, 0.3])  # node 1 keeps inputs 1 and 2 because of beta alone
    cell = derive_cell(op_w, edge_w, STEPS)
    assert [j for _, j in cell[2:4]] == [1, 2]


def test_ties_are_broken_towards_lower_indices():
    op_w = torch.full((N_EDGES, N_OPS), 1.0 / N_OPS)
    edge_w = torch.ones(N_EDGES)
    cell = derive_cell(op_w, edge_w, STEPS)
    assert cell == [("max_pool_3x3", j) for _ in range(STEPS) for j in (0, 1)]
    # equal strength on edges 1 and 2 of node 1, edge 0 weaker: inputs 1 and 2 (not 0)
    edge_w[2:5] = torch.tensor([0.1, 0.5, 0.5])
    assert [j for _, j in derive_cell(op_w, edge_w, STEPS)[2:4]] == [1, 2]
    # same inputs again on a second call: deterministic
    assert derive_cell(op_w, edge_w, STEPS) == derive_cell(op_w.clone(), edge_w.clone(), STEPS)


def test_derive_genotype_of_a_supernet_is_valid_and_uses_both_cell_types():
    torch.manual_seed(0)
    net = SearchNetwork(10, in_chans=1, channels=4, layers=3)
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, PRIMITIVES.index("sep_conv_3x3")] = 5.0
        net.alphas_reduce.zero_()
        net.alphas_reduce[:, PRIMITIVES.index("max_pool_3x3")] = 5.0
    g = derive_genotype(net)
    assert {op for op, _ in g.normal} == {"sep_conv_3x3"}
    assert {op for op, _ in g.reduce} == {"max_pool_3x3"}
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def _example() -> dict:
    return {
        "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_5x5", 0], ["max_pool_3x3", 2],
                   ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["dil_conv_3x3", 4], ["skip_connect", 0]],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                   ["sep_conv_5x5", 1], ["skip_connect", 2], ["dil_conv_3x3", 2], ["avg_pool_3x3", 4]],
        "reduce_concat": [2, 3, 4, 5],
    }


def test_json_round_trip(tmp_path):
    g = load_genotype(_example())
    path = tmp_path / "sub" / "genotype.json"
    save_genotype(path, g)
    assert json.loads(path.read_text()) == _example()
    assert load_genotype(path) == g
    assert load_genotype(str(path)) == g
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["normal"].__setitem__(3, ["conv_7x7", 1]), r"normal\[3\]: unknown op 'conv_7x7'"),
    (lambda d: d["reduce"].__setitem__(0, ["none", 0]), r"reduce\[0\]: unknown op 'none'"),
    (lambda d: d["normal"].__setitem__(2, ["sep_conv_3x3", 3]), r"normal\[2\]: input node 3 out of range .*0\.\.2"),
    (lambda d: d["normal"].__setitem__(0, ["sep_conv_3x3", -1]), r"normal\[0\]: input node -1"),
    (lambda d: d["normal"].__setitem__(0, ["sep_conv_3x3", "1"]), r"normal\[0\]: input node '1'"),
    (lambda d: d["normal"].__setitem__(0, "sep_conv_3x3"), r"normal\[0\]: expected \[op, input_node\]"),
    (lambda d: d["reduce"].pop(), r"reduce: expected a non-empty list .* two per node"),
    (lambda d: d.pop("reduce_concat"), r"missing key\(s\) \['reduce_concat'\]"),
    (lambda d: d.__setitem__("normal_concat", [2, 6]), r"normal_concat\[1\]: node 6 out of range 2\.\.5"),
    (lambda d: d.__setitem__("normal_concat", [2, 2]), r"normal_concat: duplicate"),
])
def test_bad_genotype_files_name_file_and_entry(tmp_path, mutate, message):
    data = _example()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_genotype(path)
    assert str(path) in str(info.value)


def test_malformed_and_missing_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"normal": [["sep_conv_3x3", 0],')
    with pytest.raises(ValueError, match=rf"genotype file {path}: not valid JSON"):
        load_genotype(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_genotype(path)
    with pytest.raises(FileNotFoundError, match="genotype file not found"):
        load_genotype(tmp_path / "nope.json")
    with pytest.raises(TypeError, match="genotype must be"):
        load_genotype(42)
