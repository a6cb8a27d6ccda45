"""OS errors end as one-line kmix errors naming the path, exit 2, with the previous files intact (issue 14:
P9 full disk / unwritable --out, P11 a bad image in a DataLoader worker); Ctrl-C says how to continue."""
from __future__ import annotations

import errno
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from data_sources import tiny_imagefolder
from kmix.cli.main import continue_command, main
from kmix.io import WriteError, atomic_write, write_bytes_atomic
from kmix.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# a run of a few seconds: width-8 CNN on digits, 3 steps per epoch
TINY = ["--model", "small_cnn", "--model-arg", "width=8", "--batch-size", "32", "--limit-train-batches", "3",
        "--no-tensorboard", "--no-plot", "--quiet", "--seed", "3"]


@contextmanager
def file_size_limit(nbytes: int):
    """`ulimit -f` for this process: a write past `nbytes` fails with EFBIG 'File too large', as a full disk
    fails with ENOSPC (Python ignores SIGXFSZ, so the write reports the error instead of the process dying)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_failed_write_raises_write_error_naming_the_path_and_keeps_the_old_file(tmp_path):
    path = write_bytes_atomic(tmp_path / "a.bin", b"old")
    with file_size_limit(4096):
        with pytest.raises(WriteError) as caught:
            write_bytes_atomic(path, b"x" * 100_000)
        assert str(caught.value) == f"cannot write {path}: File too large"
        # torch.save reports the failed write as "RuntimeError: [enforce fail at inline_container.cc] unexpected
        # pos"; the OSError it was handling is what the user is told
        with pytest.raises(WriteError, match=rf"^cannot write {re.escape(str(path))}: File too large$") as caught:
            atomic_write(path, lambda f: torch.save(torch.zeros(100_000), f))
    err = caught.value
    assert isinstance(err, OSError) and err.errno == errno.EFBIG and err.filename == str(path)
    assert _files(tmp_path) == {"a.bin": b"old"}  # the old file intact, no temp file left

    (tmp_path / "plain").write_text("a file")
    with pytest.raises(WriteError, match=rf"^cannot write {re.escape(str(tmp_path))}/plain/sub/b.bin: "
                                         rf"{re.escape(str(tmp_path))}/plain is a file, not a folder$"):
        write_bytes_atomic(tmp_path / "plain" / "sub" / "b.bin", b"new")
    with pytest.raises(WriteError, match=rf"^cannot write {re.escape(str(tmp_path))}: Is a directory$"):
        write_bytes_atomic(tmp_path, b"new")  # rename over a folder
    assert _files(tmp_path) == {"a.bin": b"old", "plain": b"a file"}


def test_errors_inside_a_writer_that_are_not_os_errors_pass_through(tmp_path):
    def broken(f):
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="^bad value$"):
        atomic_write(tmp_path / "a.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_disk_says_which_file_and_keeps_the_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = _files(out)
    assert len(before["last.pt"]) > 64 * 1024
    capsys.readouterr()
    with file_size_limit(64 * 1024):  # config.yaml and metrics.jsonl fit, the epoch-2 last.pt does not
        code = main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume"])
    assert code == 2
    assert capsys.readouterr().err == f"kmix train: error: cannot write {out / 'last.pt'}: File too large\n"
    after = _files(out)
    assert after["last.pt"] == before["last.pt"]  # epoch 1's checkpoint, intact
    assert sorted(after) == sorted(before)  # no temp file left; best.pt (small) may hold epoch 2's best
    assert load_checkpoint(out / "best.pt")["model"]
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume"]) == 0  # space again: it continues


def test_an_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "plain").write_text("a file")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "plain" / "run")]) == 2
    assert capsys.readouterr().err == f"kmix train: error: Not a directory ({tmp_path / 'plain' / 'run'})\n"
    assert main(["show", "--num-images", "2", "--out", str(tmp_path / "plain" / "grid.png")]) == 2
    assert capsys.readouterr().err == (f"kmix show: error: cannot write {tmp_path / 'plain' / 'grid.png'}: "
                                       f"{tmp_path / 'plain'} is a file, not a folder\n")
    assert (tmp_path / "plain").read_text() == "a file"


def _show_as(uid: int | None, data: Path, warm: Path, out: Path, queue) -> None:
    """Child of a fork: run kmix show once into a writable file (so that every module, font and cache it
    needs is loaded in this very process), drop to `uid` (root bypasses folder permissions), run it into
    `out`, report (code, stderr). Nothing outside `data` is read after the drop, so the test passes even from
    a checkout (and venv) inside a folder other users cannot enter."""
    import contextlib
    import io

    args = ["show", "--data", str(data), "--image-size", "16", "--num-images", "2", "--out"]
    with contextlib.redirect_stderr(io.StringIO()):
        main([*args, str(warm)])
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([*args, str(out)])
    queue.put((code, err.getvalue()))


def test_a_read_only_out_is_a_one_line_error():
    """A folder without write permission; as root the command runs in a child process as user nobody."""
    import multiprocessing as mp
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kmix-ro-"))  # outside pytest's 0700 folders, so nobody can enter it
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir()
        (folder / "grid.png").write_bytes(b"old")
        folder.chmod(0o555)
        # images inside `base` (digits would be read from the Python installation, which nobody may not enter
        # when the checkout and its venv lie in a 0700 folder)
        data = tiny_imagefolder(base / "imgs")
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_show_as, args=(65534 if os.geteuid() == 0 else None, data, base / "warm.png",
                                                   folder / "grid.png", queue))
        child.start()
        code, err = queue.get(timeout=120)
        child.join()
        assert code == 2
        assert err == f"kmix show: error: cannot write {folder / 'grid.png'}: Permission denied\n"
        assert _files(folder) == {"grid.png": b"old"}
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base)


def test_a_bad_image_read_in_a_worker_process_is_one_line_naming_the_file(tmp_path, capsys):
    data = tiny_imagefolder(tmp_path / "imgs")
    bad = data / "train" / "a" / "3.png"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    code = main(["train", *TINY, "--data", str(data), "--image-size", "16", "--batch-size", "8", "--epochs", "1",
                 "--loader", "workers", "--workers", "2", "--no-augment", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err == f"kmix train: error: cannot read image {bad}: OSError: image file is truncated\n"


def test_ctrl_c_during_train_says_how_to_continue_and_that_continues(tmp_path, monkeypatch):
    """No --out: the hint names the folder the run made (runs/<data>-<model>-<mix>-<time>). The run asks for
    far more epochs than it can train before the signal arrives, so it cannot finish first on an idle machine;
    the continuation then asks for one epoch more than the interrupted run had finished."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # Ctrl-C's default handling in the run, as in a terminal: a suite started as a background job (`cmd &` in a
    # script) ignores SIGINT, and a child would inherit that and never see the signal
    proc = subprocess.Popen([sys.executable, "-m", "kmix", "train", *TINY, "--epochs", "100000"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("runs/*/config.yaml")):  # training has started
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    (folder,) = tmp_path.glob("runs/*")
    assert proc.returncode == 130
    assert re.fullmatch(r"runs/digits-small_cnn-dcutmix-\d{8}-\d{6}", str(folder.relative_to(tmp_path)))
    hint = f"kmix train: interrupted; continue with: kmix train --resume --out runs/{folder.name}"
    assert err.splitlines()[-1] == hint

    metrics = folder / "metrics.jsonl"
    done = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(err.splitlines()[-1].split("continue with: kmix ")[1]) + ["--epochs", str(done + 1)]) == 0
    assert (folder / "summary.json").is_file() and len(metrics.read_text().splitlines()) == done + 1


def test_how_other_commands_continue():
    interrupted = KeyboardInterrupt()
    assert continue_command("search", ["search", "--out", "s", "--epochs", "3"], interrupted) == \
        "kmix search --out s --epochs 3 --resume"
    assert continue_command("search", ["search", "--resume", "--out", "my dir"], interrupted) == \
        "kmix search --resume --out 'my dir'"
    assert continue_command("sweep", ["sweep", "--out", "w", "--seeds", "2"], interrupted) == \
        "kmix sweep --out w --seeds 2"
    assert continue_command("train", ["train"], interrupted) is None  # stopped before it had a folder
    assert continue_command("show", ["show"], interrupted) is None
