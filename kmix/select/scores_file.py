"""The scores file, one format for every `kmix score --method`.

Columns: `index,label`, then the method's score columns (kmix-cv: `mean,std,cv`; el2n: `el2n`;
...), then optional extra columns (kmix-cv's `loss_0..loss_{M-1}`; `<name>_0..` per checkpoint when
several are averaged). CSV, plus a Parquet twin when pyarrow is there. A JSON sidecar
`<file>.json` records how the scores were made and, for the reader, `method`, `score_columns`
(the columns a valid file must have), `orders` (per score column, the end that ranks first by
default) and `labels_sha256` (the label column's hash, checked on read). A file without a sidecar naming its score columns (older kmix-cv files, the Parquet
twin, a file written by hand) is checked against the registered method whose score columns its
header contains; any other numeric column may still be used with `kmix subsample --by`.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmix.select.methods import column_orders, method_for_columns
from kmix.select.scores_write import (KEY_COLUMNS, KMIX_CV_COLUMNS, _have_pyarrow, labels_digest, write_score_table,
                                      write_scores)

__all__ = ["KEY_COLUMNS", "KMIX_CV_COLUMNS", "ScoreTable", "labels_digest", "read_scores", "write_score_table",
           "write_scores"]


@dataclass
class ScoreTable:
    """Scores read back from a file; row i is dataset image `index[i]` (sorted, 0..N-1).

    `columns` holds every numeric column but index and label; `score_columns` the ones the file's
    method declares (or that the reader inferred); `meta` the sidecar (empty without one).
    """

    index: np.ndarray
    label: np.ndarray
    columns: dict[str, np.ndarray]
    path: str
    meta: dict
    score_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.index)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise ValueError(f"scores file {self.path} has no column {name!r} (has {', '.join(self.columns)})")
        return self.columns[name]

    def default_order(self, name: str) -> str:
        """The end of column `name` that ranks first by default: the sidecar's `orders`, else the
        registered method's; a per-checkpoint column `<score>_<j>` follows `<score>`; else "high"."""
        orders = {**column_orders(), **(self.meta.get("orders") if isinstance(self.meta.get("orders"), dict) else {})}
        base, _, suffix = name.rpartition("_")
        if name not in orders and suffix.isdigit() and base in orders:
            name = base
        return orders.get(name, "high")


def _required_score_columns(meta: dict, header: list[str]) -> tuple[str, ...]:
    """The score columns a file must have: its sidecar's `score_columns`, else those of the registered
    method whose columns its header shows (a header with mean/std but no cv is an incomplete kmix-cv
    file), else none."""
    declared = meta.get("score_columns")
    if isinstance(declared, list) and declared:
        return tuple(str(c) for c in declared)
    method = method_for_columns(header)
    return tuple(method.columns) if method is not None else ()


def read_scores(path: str | os.PathLike) -> ScoreTable:
    """Read and validate a scores file (CSV or Parquet): index and label plus the file's score columns
    (see `_required_score_columns`), at least one score column, numeric values, index 0..N-1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scores file not found: {path}")
    if path.suffix.lower() == ".parquet":
        if not _have_pyarrow():
            raise ValueError(f"reading {path} needs pyarrow (pip install 'kmix[parquet]')")
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = {name: table.column(name).to_numpy() for name in table.column_names}
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"scores file {path} is empty")
            rows = list(reader)
        bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
        if bad:
            raise ValueError(f"scores file {path}: line {bad[0]} has a different number of fields than the header")
        raw = {name: np.array([r[j] for r in rows]) for j, name in enumerate(header)}
    sidecar = path.with_name(path.name + ".json")
    try:
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"scores sidecar {sidecar} is not valid JSON ({err})") from None
    needed = (*KEY_COLUMNS, *_required_score_columns(meta, list(raw)))
    missing = [c for c in needed if c not in raw]
    if missing:
        raise ValueError(f"scores file {path} lacks column(s) {', '.join(missing)} "
                         f"(needs {', '.join(needed)}; has {', '.join(raw) or 'none'})")
    if len(raw) == len(KEY_COLUMNS):
        raise ValueError(f"scores file {path} has no score column (only {', '.join(raw)})")
    columns = {}
    for name, values in raw.items():
        try:
            columns[name] = values.astype(np.float64)
        except ValueError as err:
            raise ValueError(f"scores file {path}: column {name!r} is not numeric ({err})") from None
    index = columns.pop("index")
    label = columns.pop("label")
    if np.any(index != np.round(index)) or np.any(label != np.round(label)):
        raise ValueError(f"scores file {path}: index and label must be integers")
    index, label = index.astype(np.int64), label.astype(np.int64)
    n = len(index)
    if n == 0:
        raise ValueError(f"scores file {path} has no rows")
    if index.min() < 0:
        raise ValueError(f"scores file {path}: negative index {int(index.min())} (indices must be 0..{n - 1})")
    unique = np.unique(index)
    if len(unique) != n:
        raise ValueError(f"scores file {path}: duplicate indices")
    if index.max() >= n:  # n distinct indices reaching past n - 1: some in 0..max are missing (a deleted row)
        missing = np.setdiff1d(np.arange(int(index.max()) + 1), unique)
        shown = ", ".join(str(int(m)) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"scores file {path}: {len(missing)} index(es) missing ({shown}): {n} rows hold indices up to "
                         f"{int(index.max())}; a row was deleted or the file was cut; score again")
    if label.min() < 0:
        raise ValueError(f"scores file {path}: negative label {int(label.min())}")
    if "n" in meta and int(meta["n"]) != n:
        raise ValueError(f"scores file {path} has {n} rows but {sidecar.name} says {int(meta['n'])} images were "
                         "scored: the file was cut or mixed with another; score again")
    order = np.argsort(index)
    recorded = meta.get("labels_sha256")
    if recorded is not None and labels_digest(label[order]) != recorded:
        raise ValueError(f"scores file {path}: its label column is not the one {sidecar.name} recorded when it was "
                         "written (the file was edited or damaged); score again")
    columns = {k: v[order] for k, v in columns.items()}
    score_columns = tuple(c for c in needed if c not in KEY_COLUMNS) or tuple(columns)
    for name in score_columns:
        bad = np.flatnonzero(np.isinf(columns[name]))  # NaN may be legitimate (a sample never seen): checked on use
        if len(bad):
            raise ValueError(f"scores file {path}: column {name!r} is infinite at index {int(index[order][bad[0]])}")
    return ScoreTable(index=index[order], label=label[order], columns=columns, path=str(path), meta=meta,
                      score_columns=score_columns)
