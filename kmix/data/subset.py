"""Training subsets from index files: validate indices, save them atomically, wrap a dataset."""
from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from torch.utils.data import Dataset, Subset

from kmix.io import write_json_atomic

PathLike = str | os.PathLike


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def read_indices_file(path: PathLike, n: int | None = None, classes: Sequence[str] = (),
                      fingerprint: str | None = None) -> list:
    """Read the raw index list from a JSON file: `{"indices": [...], ...}` or a plain list. A file that
    records the dataset it was made from (`n_total`, `data_provenance.classes` and `.fingerprint`, as kmix
    subsample writes) must match `n`, `classes` and `fingerprint` (the data's files; None: not checked)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"subset index file not found: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"subset index file {path} is not valid JSON: {err}") from err
    if isinstance(payload, dict):
        if "indices" not in payload:
            raise ValueError(f"subset index file {path} has no 'indices' key (keys: {sorted(payload)})")
        made_for = payload.get("n_total")
        if n is not None and made_for is not None and made_for != n:
            raise ValueError(f"subset index file {path} was made from a dataset of {made_for} images "
                             f"(data {payload.get('data')!r}), but this one has {n}: the indices would name "
                             "other images")
        made_from = (payload.get("data_provenance") or {}).get("classes") or []
        if classes and made_from and list(made_from) != list(classes):
            raise ValueError(f"subset index file {path} was made from a dataset with classes {made_from[:5]}..., "
                             f"but this one has {list(classes)[:5]}...: the indices would name other images")
        made_fp = (payload.get("data_provenance") or {}).get("fingerprint")
        if fingerprint is not None and made_fp is not None and made_fp != fingerprint:
            raise ValueError(f"subset index file {path} was made from other data files (fingerprint {made_fp}, "
                             f"data {payload.get('data')!r}) than these (fingerprint {fingerprint}): two sources "
                             "of the same dataset may order images differently (e.g. CIFAR-10's pickles and a "
                             "JPEG tarball), so the indices could name other images; make the subset again with "
                             "kmix subsample --data on this data (the fingerprint digests file names, sizes and "
                             "times: a copy with new times differs too)")
        payload = payload["indices"]
    if not isinstance(payload, list):
        raise ValueError(
            f"subset index file {path}: indices must be a JSON list, got {type(payload).__name__}"
        )
    return payload


def validate_indices(indices: Iterable[Any], n: int, *, source: str = "indices") -> list[int]:
    """Return `indices` as a list of ints after checking type, range [0, n) and uniqueness."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"dataset size n must be a non-negative int, got {n!r}")
    if _is_path(indices) or isinstance(indices, (bytes, dict)):
        raise TypeError(f"{source}: expected a sequence of ints, got {type(indices).__name__}")
    try:
        raw = list(indices.tolist() if hasattr(indices, "tolist") else indices)
    except TypeError as err:
        raise TypeError(f"{source}: expected a sequence of ints, got {type(indices).__name__}") from err
    out: list[int] = []
    seen: dict[int, int] = {}
    for pos, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{source}: entry {pos} is {value!r}, not an integer index")
        value = int(value)
        if not 0 <= value < n:
            raise ValueError(f"{source}: index {value} (entry {pos}) is out of range for a dataset of n={n} items")
        if value in seen:
            raise ValueError(f"{source}: index {value} appears twice (entries {seen[value]} and {pos})")
        seen[value] = pos
        out.append(value)
    return out


def load_indices(path_or_list: PathLike | Sequence[int], n: int, classes: Sequence[str] = (),
                 fingerprint: str | None = None) -> list[int]:
    """Indices for a dataset of `n` items (named `classes`, with files of `fingerprint`, when known) from a
    JSON file or a sequence, validated (made from this dataset, range, duplicates)."""
    if _is_path(path_or_list):
        return validate_indices(read_indices_file(path_or_list, n, classes, fingerprint), n,
                                source=f"subset index file {path_or_list}")
    return validate_indices(path_or_list, n)


def save_indices(path: PathLike, indices: Sequence[int], **meta: Any) -> Path:
    """Write `{"indices": [...], **meta}` as JSON atomically (temp file + rename); returns the path."""
    payload = {"indices": [int(i) for i in indices], **meta}
    return write_json_atomic(path, payload, indent=None)


class IndexedSubset(Subset):
    """A `torch.utils.data.Subset` that also exposes the subset's labels as `.targets`."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        super().__init__(dataset, list(indices))
        parent_targets = getattr(dataset, "targets", None)
        if parent_targets is None:
            raise TypeError(f"subset_dataset needs a dataset with .targets, got {type(dataset).__name__}")
        self.targets = [int(parent_targets[i]) for i in self.indices]


def subset_dataset(dataset: Dataset, indices_or_path: PathLike | Sequence[int]) -> IndexedSubset:
    """Restrict `dataset` to the validated indices (a list or a JSON index file); keeps `.targets`."""
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError(f"subset_dataset needs a sized dataset, got {type(dataset).__name__}") from err
    return IndexedSubset(dataset, load_indices(indices_or_path, n))
