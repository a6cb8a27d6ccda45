"""Atomic file writes for every kmix output: a temp file in the same folder, fsync, then rename.

Readers (and a run killed mid-write) see either the old file or the complete new one, never half.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any


class WriteError(OSError):
    """An output could not be written (read-only folder, full disk, no permission, a file where a folder
    should be); the file at `filename` is as it was before. str(): 'cannot write <path>: <reason>'."""

    def __init__(self, path: str | os.PathLike, reason: str, errno: int | None = None):
        super().__init__(errno, reason, str(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(binary_file)` on a temp file beside `path`, fsync it, and rename it over `path`.

    An OS error on the way (also one that a writer such as torch.save turns into a RuntimeError) raises
    WriteError naming `path`; the old file at `path` stays as it was, and no temp file is left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the mode open() would give
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        cause = _os_error_in(err)
        if cause is None:
            raise
        raise _write_error(path, cause) from err
    return path


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind `err`: itself, or for a RuntimeError (torch.save reports a failed write as
    'enforce fail ... unexpected pos') the OSError it was raised while handling."""
    if isinstance(err, OSError):
        return err
    if isinstance(err, RuntimeError):
        seen = err.__cause__ or err.__context__
        while seen is not None:
            if isinstance(seen, OSError):
                return seen
            seen = seen.__cause__ or seen.__context__
    return None


def _write_error(path: Path, err: OSError) -> WriteError:
    if isinstance(err, WriteError):
        return err
    if isinstance(err, (FileExistsError, NotADirectoryError)):  # mkdir met a file where a folder should be
        for folder in (path.parent, *path.parent.parents):
            if folder.exists():
                if not folder.is_dir():
                    return WriteError(path, f"{folder} is a file, not a folder", err.errno)
                break
    return WriteError(path, err.strerror or str(err), err.errno)


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write `obj` as JSON (indented unless `indent=None`) atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_csv_atomic(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file with `header` and `rows` atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content (hex): what an artifact records of the checkpoint it was made from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
