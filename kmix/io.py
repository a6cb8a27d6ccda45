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


# --- checksummed torch files ----------------------------------------------------------------------
# Every state file kmix writes with torch.save and reads back (last.pt/best.pt, score chunks, dynamics.pt,
# the search checkpoint) carries the SHA-256 of its content in the zip archive comment, the last bytes of
# the file: `kmix-sha256:<64 hex>`. torch.save writes a zip whose end record has an empty comment; the
# digest is of exactly those bytes (the comment-length field back at 0 and no comment), so the file
# stays an ordinary torch file that torch.load (and any zip reader) opens as before.

CHECKSUM_TAG = b"kmix-sha256:"
_CHECKSUM_LEN = len(CHECKSUM_TAG) + 64
_EOCD_SIG = b"PK\x05\x06"  # the zip end-of-central-directory record: 22 bytes, then the comment
_EOCD_LEN = 22


class ChecksumError(ValueError):
    """A state file's content does not match the checksum written with it. str(): one line naming the file."""

    def __init__(self, path: str | os.PathLike, label: str = "state file"):
        self.path = Path(path)
        super().__init__(f"{label} {path} is corrupt: its content does not match the SHA-256 written with it "
                         "(damaged on disk or in a copy, or edited); it was not used")


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """torch.save `obj` to `path` atomically, with the SHA-256 of its content in the zip archive comment
    (checked by `verify_torch_checksum`). The bytes are serialised in memory first (one copy of the file)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getbuffer()  # no copy
    if bytes(data[-_EOCD_LEN:-_EOCD_LEN + 4]) != _EOCD_SIG or bytes(data[-2:]) != b"\x00\x00":
        raise RuntimeError("torch.save wrote no zip end record with an empty comment; cannot add a checksum")
    comment = CHECKSUM_TAG + hashlib.sha256(data).hexdigest().encode()
    trailer = len(comment).to_bytes(2, "little") + comment

    def write(f: IO[bytes]) -> None:
        f.write(data[:-2])  # all but the comment-length field (0)
        f.write(trailer)

    try:
        return atomic_write(path, write)
    finally:
        data.release()


def verify_torch_checksum(path: str | os.PathLike, label: str = "state file") -> bool:
    """Check the checksum of a file written by `save_torch_atomic`: True when it matches, False when the
    file carries none (written by an older kmix, or not by kmix: accepted as before); ChecksumError
    naming the file (as `label`) when it does not match."""
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        end = _EOCD_LEN + _CHECKSUM_LEN
        if size < end:
            return False
        f.seek(size - end)
        tail = f.read(end)
        if tail[:4] != _EOCD_SIG or tail[_EOCD_LEN - 2:_EOCD_LEN] != _CHECKSUM_LEN.to_bytes(2, "little"):
            return False
        comment = tail[_EOCD_LEN:]
        if not comment.startswith(CHECKSUM_TAG):
            return False
        h = hashlib.sha256()
        f.seek(0)
        left = size - _CHECKSUM_LEN - 2  # everything before the comment-length field
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    h.update(b"\x00\x00")
    if h.hexdigest().encode() != comment[len(CHECKSUM_TAG):]:
        raise ChecksumError(path, label)
    return True
