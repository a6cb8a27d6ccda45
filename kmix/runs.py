"""The run machinery that train, score, search and prune-curve share: named seed streams, one resume
policy, tagged state files that carry every RNG, and one lock per output folder.

A long command is only as trustworthy as the pieces here: a resumed run must draw the same random
numbers (seed streams, RNG states), refuse to continue a run made with other settings (check_resume),
never leave half a file (save_state through kmix.io) and never share its folder (lock_run_folder).
"""
from __future__ import annotations

import enum
import os
import random
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kmix.io import save_torch_atomic, verify_torch_checksum

_MIX = 0x9E3779B97F4A7C15  # 64-bit golden-ratio constant for mixing seeds


class Stream(enum.IntEnum):
    """One seed stream per use of randomness, so that draws for different purposes never collide.

    The values are part of every result: changing one changes the runs that draw from it."""

    ORDER = 1  # the shuffled order of an epoch (train)
    ITEM = 2  # the torch RNG under which item i of epoch e is loaded (worker pipeline's crop/flip)
    MIX = 3  # the mixing parameters of one step
    RANK = 4  # each rank's global RNGs (dropout and the like)
    LOADER = 5  # the DataLoader's own generator (worker seeding)
    CUTOUT = 6  # the cutout boxes of one step
    DEVICE_AUGMENT = 7  # the device pipeline's batched crop/flip of one step
    VAL_SPLIT = 11  # the per-class hold-out of --val-fraction
    IMAGEFOLDER_SPLIT = 12  # split_imagefolder: which files of each class go to val/
    SEARCH_LIMIT = 21  # search: which images --limit keeps
    SEARCH_SPLIT = 22  # search: weight half vs architecture half
    SEARCH_ORDER = 23  # search: the order of an epoch, one per half
    ANCHOR = 31  # kmix-cv: the composites of one chunk of anchors
    SUBSAMPLE_RANDOM = 32  # subsample: --sampling random / --by random
    SUBSAMPLE_CCS = 33  # subsample: the draws within CCS strata
    MC_DROPOUT = 34  # subsample: the dropout masks of --by mc-dropout
    SHOW_IMAGES = 41  # show: which training images are shown
    SHOW_MIX = 42  # show: the mixing parameters (one draw, the same for every mixer)
    EVAL_SUBSET = 51  # analysis commands: the fixed --limit subset of the evaluation data
    WEIGHT_NOISE = 52  # landscape: the Gaussian weight perturbations
    HESSIAN_EIGEN = 53  # landscape: the power iteration's start vectors
    HESSIAN_TRACE = 54  # landscape: Hutchinson's Rademacher probes
    ATTACK_START = 55  # attack: PGD's random start in the eps-ball


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so (seed, epoch, step) tuples never collide in practice."""
    h = 0
    for part in parts:
        h = (h ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * _MIX & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def seed_for(stream: Stream, *parts: int) -> int:
    """The seed of `stream` at `parts` (e.g. run seed, epoch, step): the only way kmix derives a seed."""
    if not isinstance(stream, Stream):
        raise TypeError(f"stream must be a kmix.runs.Stream, got {stream!r}")
    return derive_seed(*parts, int(stream))


def generator_for(stream: Stream, *parts: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed_for(stream, *parts)`."""
    return torch.Generator().manual_seed(seed_for(stream, *parts))


class RunStopped(Exception):
    """Raised by a long command's `stop_after_*` hook right after that point's state is saved: an
    interruption on purpose (resume tests, time-boxed jobs); resuming continues from it."""


# --- resume -----------------------------------------------------------------------------------------

def refuse_unasked_resume(state_file: str | os.PathLike, what: str, resume: bool) -> None:
    """A command given a folder that already holds its state file stops unless asked to resume: it names the
    folder and the two ways on (--resume, or another --out), so no run is overwritten or silently continued."""
    path = Path(state_file)
    if not resume and path.exists():
        raise ValueError(f"out {str(path.parent)!r} already holds {what} ({path.name}); pass --resume to continue "
                         "it or choose another --out")


def check_resume(saved: Mapping[str, Any], now: Mapping[str, Any], must_match: Iterable[str], *, source: Any,
                 what: str = "run", defaults: Mapping[str, Any] | None = None,
                 hint: str = "choose another --out") -> None:
    """Refuse to continue `source` unless every field in `must_match` (the allow-list of the fields that
    define the run) is equal in `saved` and `now`; the error lists each difference as `k: old -> new`.

    A field missing from `saved` (a file written before the field existed) counts as `defaults[k]`."""
    defaults = defaults or {}
    diff = [f"{k}: {saved.get(k, defaults.get(k))!r} -> {now.get(k)!r}" for k in must_match
            if saved.get(k, defaults.get(k)) != now.get(k)]
    if diff:
        raise ValueError(f"{source} holds a {what} with other settings ({'; '.join(diff)}); {hint}")


# --- RNG state --------------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """The global RNG states of this process: python, numpy, torch CPU and (where initialised) CUDA."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states saved by `rng_state` (a CUDA state is skipped where CUDA is absent)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu() if torch.is_tensor(state["torch"]) else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- state files ------------------------------------------------------------------------------------

def save_state(path: str | os.PathLike, kind: str, state: Mapping[str, Any]) -> Path:
    """torch.save `state` tagged with `kind` (e.g. "kmix-train"), atomically: a run killed mid-write
    leaves the previous file whole. The file carries its content's SHA-256 (kmix.io.save_torch_atomic),
    checked by `load_state`."""
    return save_torch_atomic(path, {**state, "kind": kind})


def load_state(path: str | os.PathLike, kind: str, *, label: str = "state file", untagged_keys: Iterable[str] = (),
               map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a file written by `save_state(path, kind, ...)`; the error names the file (as `label`) when it
    is missing, corrupt or of another kind. A file with no tag is accepted when it has every key of
    `untagged_keys` (files written before kinds were tagged). Its checksum is verified first: a mismatch
    raises kmix.io.ChecksumError (a ValueError); a file without one (older kmix) is accepted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label} not found: {path}")
    verify_torch_checksum(path, label)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated/corrupt pickle or zip
        raise ValueError(f"{label} {path} is corrupt or not a torch file: {err}") from err
    found = state.get("kind") if isinstance(state, dict) else None
    keys = tuple(untagged_keys)
    untagged_ok = isinstance(state, dict) and found is None and bool(keys) and all(k in state for k in keys)
    if found != kind and not untagged_ok:
        raise ValueError(f"{path} is not a {kind} {label}" + (f" (it is a {found} file)" if found else ""))
    return state


# --- one process per run folder ---------------------------------------------------------------------

LOCK_NAME = ".kmix.lock"
TEMP_FILE = re.compile(r".+\.[A-Za-z0-9_]{8}\.tmp")  # kmix.io.atomic_write's temp files (mkstemp's 8 characters)


def remove_temp_files(folder: str | os.PathLike, prefix: str = "") -> None:
    """Delete the temp files that writes killed mid-way left in `folder` (kmix.io's `NAME.XXXXXXXX.tmp`),
    only those whose name starts with `prefix`. Call it holding the lock of whatever writes there."""
    for stale in Path(folder).iterdir():
        if stale.name.startswith(prefix) and TEMP_FILE.fullmatch(stale.name) and stale.is_file():
            stale.unlink(missing_ok=True)


class RunFolderBusy(RuntimeError):
    """Another live process writes into the run folder."""


@contextmanager
def lock_run_folder(folder: str | os.PathLike, command: str = "kmix", name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an OS file lock on `folder`/`name` while the body runs; a second process into the same
    folder gets RunFolderBusy naming the holder. The OS drops the lock when its holder dies, so a lock
    left by a killed run is taken over without any staleness guess; so are the temp files of writes it
    was killed in (nobody else writes here). A folder made here and left holding only the lock (the
    command failed before writing anything) is removed again."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): run unlocked rather than not at all
        yield Path(folder)
        return
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise RunFolderBusy(f"{folder} is in use by {holder}; wait for it to finish or choose another "
                                "--out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{command} (pid {os.getpid()} on {socket.gethostname()})".encode(), 0)
        remove_temp_files(folder)
        yield folder
    finally:
        os.close(fd)  # closing releases the lock
        if created and os.listdir(folder) == [name]:
            path.unlink(missing_ok=True)
            folder.rmdir()
