"""The shared helpers every command uses: atomic writes and device resolution."""
from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from kmix.devices import resolve_device
from kmix.io import atomic_write, write_csv_atomic, write_json_atomic


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "a.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}

    def broken(f):
        f.write(b'{"x": 2, "half')
        raise KeyboardInterrupt  # a run interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"x": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temp file left behind


def test_csv_writer_round_trip(tmp_path):
    path = write_csv_atomic(tmp_path / "t.csv", ["a", "b"], [[1, 2.5], [3, "x"]])
    assert path.read_text() == "a,b\n1,2.5\n3,x\n"
    # fields a naive writer would break (commas, quotes, newlines, blanks) read back as written
    rows = [["cat, dog", 'say "hi"'], ["two\nlines", ""], [0.1 + 0.2, -7]]
    path = write_csv_atomic(tmp_path / "t.csv", ["name", "value"], rows)
    with open(path, newline="", encoding="utf-8") as f:
        back = list(csv.reader(f))
    assert back == [["name", "value"], *[[str(v) for v in row] for row in rows]]
    assert float(back[3][0]) == 0.1 + 0.2  # floats keep every digit


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_atomic_outputs_respect_the_umask(tmp_path):
    """Collaborators can read checkpoints and CSVs: the mode is 0666 minus the umask, as open() gives."""
    from kmix.io import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        os.umask(0o077)
        write_text_atomic(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
