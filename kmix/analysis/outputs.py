"""Atomic writers for the analysis outputs (JSON, CSV, PNG): an interrupted run never leaves half a file."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from kmix.io import write_bytes_atomic


_write_atomic = write_bytes_atomic


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON via temp file + rename."""
    return _write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], fieldnames: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (header from `fieldnames` or the first row) via temp file + rename."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = list(rows[0].keys()) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
    return _write_atomic(path, buf.getvalue().encode())


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return _write_atomic(path, buf.getvalue())


def new_figure(*args, **kwargs):
    """`plt.subplots` on the non-interactive Agg backend (safe on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)
