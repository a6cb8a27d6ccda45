"""The scores file: `index,label,mean,std,cv,loss_0..loss_{M-1}` as CSV (and Parquet when pyarrow is there).

A JSON sidecar `<file>.json` records how the scores were made (checkpoint, data, spec).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kmix.io import atomic_write, write_csv_atomic, write_json_atomic

REQUIRED_COLUMNS = ("index", "label", "mean", "std", "cv")


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class ScoreTable:
    """Scores read back from a file; row i is dataset image `index[i]` (sorted, 0..N-1)."""

    index: np.ndarray
    label: np.ndarray
    columns: dict[str, np.ndarray]
    path: str
    meta: dict

    def __len__(self) -> int:
        return len(self.index)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise ValueError(f"scores file {self.path} has no column {name!r} (has {', '.join(self.columns)})")
        return self.columns[name]


def write_scores(path: str | os.PathLike, labels: torch.Tensor, losses: torch.Tensor,
                 stats: dict[str, torch.Tensor], meta: dict) -> list[Path]:
    """Write the scores CSV (or Parquet, by suffix) atomically, a Parquet twin when possible, and the sidecar."""
    path = Path(path)
    n, m = losses.shape
    header = ["index", "label", "mean", "std", "cv"] + [f"loss_{j}" for j in range(m)]
    cols = [np.arange(n), labels.numpy(), stats["mean"].numpy(), stats["std"].numpy(), stats["cv"].numpy()]
    cols += [losses[:, j].double().numpy() for j in range(m)]
    written = []
    if path.suffix.lower() == ".csv":
        rows = ([int(cols[0][i]), int(cols[1][i])] + [repr(float(c[i])) for c in cols[2:]] for i in range(n))
        write_csv_atomic(path, header, rows)
        written.append(path)
        parquet = path.with_suffix(".parquet") if _have_pyarrow() else None
    else:
        parquet = path
    if parquet is not None:
        if not _have_pyarrow():
            raise ValueError(f"writing {path} needs pyarrow (pip install 'kmix[parquet]'); use a .csv name")
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(dict(zip(header, cols)))
        atomic_write(parquet, lambda f: pq.write_table(table, f))
        written.append(parquet)
    write_json_atomic(path.with_name(path.name + ".json"), meta)
    return written


def read_scores(path: str | os.PathLike) -> ScoreTable:
    """Read and validate a scores file (CSV or Parquet): required columns, numeric values, index 0..N-1."""
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
    missing = [c for c in REQUIRED_COLUMNS if c not in raw]
    if missing:
        raise ValueError(f"scores file {path} lacks column(s) {', '.join(missing)} "
                         f"(needs {', '.join(REQUIRED_COLUMNS)}; has {', '.join(raw) or 'none'})")
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
    if index.min() < 0 or index.max() >= n:
        bad = int(index.min() if index.min() < 0 else index.max())
        raise ValueError(f"scores file {path}: index {bad} out of range for {n} rows (indices must be 0..{n - 1})")
    if len(np.unique(index)) != n:
        raise ValueError(f"scores file {path}: duplicate indices")
    if label.min() < 0:
        raise ValueError(f"scores file {path}: negative label {int(label.min())}")
    order = np.argsort(index)
    columns = {k: v[order] for k, v in columns.items()}
    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return ScoreTable(index=index[order], label=label[order], columns=columns, path=str(path), meta=meta)
