"""Writing the scores file (the format is described in `kmix.select.scores_file`, which reads it back): the
table as CSV (+ a Parquet twin when pyarrow is there) or Parquet, and its JSON sidecar. Every score method
writes through here; this module knows no method, so the methods and the registry can import it.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from kmix.io import atomic_write, write_csv_atomic, write_json_atomic

KEY_COLUMNS = ("index", "label")
KMIX_CV_COLUMNS = ("mean", "std", "cv")


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_score_table(path: str | os.PathLike, labels: torch.Tensor | np.ndarray,
                      columns: Mapping[str, torch.Tensor | np.ndarray], meta: dict) -> list[Path]:
    """Write `index,label,<columns...>` (one row per image, in dataset order) atomically as CSV (plus a
    Parquet twin when pyarrow is installed) or as Parquet only (by suffix), and the JSON sidecar `meta`.

    Floats are written with `repr` (round-trip exact). `meta` should name `method`, `score_columns`
    and `orders` so that readers can check the file and sort it the method's way.
    """
    path = Path(path)
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    n = len(labels)
    header = ["index", "label", *columns]
    cols = [np.arange(n), labels]
    for name, values in columns.items():
        values = np.asarray(values.detach().cpu().double() if isinstance(values, torch.Tensor) else values,
                            dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"score column {name!r} has shape {values.shape}, expected ({n},)")
        cols.append(values)
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
    write_json_atomic(path.with_name(path.name + ".json"), {**meta, "labels_sha256": labels_digest(labels)})
    return written


def labels_digest(labels: np.ndarray) -> str:
    """The SHA-256 of a label column in index order (as little-endian int64): what the sidecar records as
    `labels_sha256`, so that a reader trusting the file's labels (subsample without --data) finds an edit."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(labels), dtype="<i8").tobytes()).hexdigest()


def write_scores(path: str | os.PathLike, labels: torch.Tensor, losses: torch.Tensor,
                 stats: dict[str, torch.Tensor], meta: dict) -> list[Path]:
    """Write a kmix-cv scores file: `index,label,mean,std,cv,loss_0..loss_{M-1}` (see `write_score_table`).

    The sidecar gets `method`, `score_columns` and `orders` for kmix-cv unless `meta` sets them.
    """
    columns = {name: stats[name] for name in KMIX_CV_COLUMNS}
    columns.update({f"loss_{j}": losses[:, j] for j in range(losses.shape[1])})
    meta = {"method": "kmix-cv", "score_columns": list(KMIX_CV_COLUMNS),
            "orders": {name: "high" for name in KMIX_CV_COLUMNS}, **meta}
    return write_score_table(path, labels, columns, meta)
