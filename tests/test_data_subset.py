"""Subset index files: validation with named errors, atomic save, `.targets` of the subset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from kmix.data.subset import load_indices, save_indices, subset_dataset


def _labelled(n: int = 10) -> TensorDataset:
    ds = TensorDataset(torch.arange(n, dtype=torch.float32).view(n, 1), torch.arange(n) % 3)
    ds.targets = (torch.arange(n) % 3).tolist()
    return ds


def test_load_indices_from_dict_file_plain_list_and_sequences(tmp_path):
    f = tmp_path / "sub.json"
    f.write_text(json.dumps({"indices": [4, 0, 7], "method": "uncertainty"}))
    assert load_indices(f, 10) == [4, 0, 7]
    assert load_indices(str(f), 10) == [4, 0, 7]
    g = tmp_path / "plain.json"
    g.write_text("[9, 1]")
    assert load_indices(g, 10) == [9, 1]
    assert load_indices(np.array([3, 2]), 10) == [3, 2]
    assert load_indices(torch.tensor([5]), 10) == [5]
    assert load_indices([], 10) == []


def test_save_then_load_roundtrip_keeps_metadata(tmp_path):
    path = save_indices(tmp_path / "deep" / "s.json", np.array([2, 8, 5]), method="random", ratio=0.3)
    payload = json.loads(path.read_text())
    assert payload == {"indices": [2, 8, 5], "method": "random", "ratio": 0.3}
    assert load_indices(path, 9) == [2, 8, 5]
    assert [p.name for p in path.parent.iterdir()] == ["s.json"]  # no temp file left behind


@pytest.mark.parametrize("content, pattern", [
    ("{not json", "is not valid JSON"),
    ('{"idx": [1]}', "has no 'indices' key"),
    ('{"indices": 3}', "must be a JSON list, got int"),
    ('"0,1,2"', "must be a JSON list, got str"),
    ("[1, 2.5]", r"entry 1 is 2\.5, not an integer"),
    ("[1, true]", "entry 1 is True"),
    ("[0, 10]", r"index 10 \(entry 1\) is out of range for a dataset of n=10"),
    ("[-1]", "index -1"),
    ("[3, 5, 3]", r"index 3 appears twice \(entries 0 and 2\)"),
])
def test_bad_index_files_name_the_file_and_the_problem(tmp_path, content, pattern):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(ValueError, match=pattern) as info:
        load_indices(f, 10)
    assert str(f) in str(info.value)


def test_missing_file_and_wrong_types():
    with pytest.raises(FileNotFoundError, match="subset index file not found: .*nope.json"):
        load_indices("nope.json", 5)
    with pytest.raises(TypeError, match="sequence of ints"):
        load_indices(7, 5)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        load_indices([0], -1)


def test_subset_dataset_items_and_targets(tmp_path):
    ds = _labelled(10)
    sub = subset_dataset(ds, [7, 2, 5])
    assert isinstance(sub, Subset) and len(sub) == 3
    assert sub.targets == [7 % 3, 2 % 3, 5 % 3]
    assert sub[0][0].item() == 7.0 and sub[2][1].item() == 5 % 3
    f = save_indices(tmp_path / "s.json", [1, 0])
    nested = subset_dataset(sub, f)  # a subset of a subset keeps working through .targets
    assert nested.targets == [sub.targets[1], sub.targets[0]] and nested[0][0].item() == 2.0
    with pytest.raises(ValueError, match="index 3 .* n=3"):
        subset_dataset(sub, [3])


def test_subset_needs_targets():
    ds = TensorDataset(torch.zeros(4, 1))
    with pytest.raises(TypeError, match="needs a dataset with .targets"):
        subset_dataset(ds, [0])
