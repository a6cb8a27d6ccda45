"""kmix.runs: seed streams, the one resume policy, tagged state files, and the run-folder lock."""
from __future__ import annotations

import multiprocessing as mp
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from kmix.data.order import epoch_permutation
from kmix.runs import (LOCK_NAME, RunFolderBusy, Stream, check_resume, derive_seed, generator_for, load_state,
                       lock_run_folder, rng_state, save_state, seed_for, set_rng_state)
from kmix.train import TrainConfig, fit


def test_seed_for_is_derive_seed_with_the_stream_last():
    # the convention that keeps every recorded training run reproducible: (parts..., stream)
    assert seed_for(Stream.ORDER, 7, 3) == derive_seed(7, 3, 1)
    assert seed_for(Stream.MIX, 0, 0, 12) == derive_seed(0, 0, 12, 3)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(derive_seed(7, 3, 1)))
    assert torch.equal(epoch_permutation(50, 7, 3), perm)


def test_streams_are_distinct_and_numbers_are_refused():
    assert len({int(s) for s in Stream}) == len(Stream)
    assert len({seed_for(s, 0, 0) for s in Stream}) == len(Stream)
    with pytest.raises(TypeError, match="kmix.runs.Stream"):
        seed_for(3, 0)  # type: ignore[arg-type]
    a = torch.rand(4, generator=generator_for(Stream.ANCHOR, 1, 2))
    assert torch.equal(a, torch.rand(4, generator=generator_for(Stream.ANCHOR, 1, 2)))
    assert not torch.equal(a, torch.rand(4, generator=generator_for(Stream.ANCHOR, 2, 1)))


def test_check_resume_compares_only_the_allow_list_and_uses_defaults():
    saved = {"lr": 0.1, "k": 3, "device": "cpu"}
    check_resume(saved, {"lr": 0.1, "k": 3, "device": "cuda"}, ("lr", "k"), source="x")  # device may change
    check_resume(saved, {"lr": 0.1, "k": 3, "new": 5}, ("lr", "k", "new"), source="x", defaults={"new": 5})
    with pytest.raises(ValueError, match=r"^runs/a holds a search with other settings \(k: 3 -> 4; new: 5 -> 6\); "
                                         r"choose another --out$"):
        check_resume(saved, {"lr": 0.1, "k": 4, "new": 6}, ("lr", "k", "new"), source="runs/a", what="search",
                     defaults={"new": 5})


def test_state_files_are_tagged_and_checked(tmp_path):
    path = tmp_path / "s.pt"
    save_state(path, "kmix-search", {"epoch": 3})
    assert load_state(path, "kmix-search") == {"epoch": 3, "kind": "kmix-search"}
    with pytest.raises(ValueError, match=r"s.pt is not a kmix-train checkpoint \(it is a kmix-search file\)"):
        load_state(path, "kmix-train", label="checkpoint")
    torch.save({"model": 1, "model_meta": 2}, tmp_path / "old.pt")  # written before kinds were tagged
    assert load_state(tmp_path / "old.pt", "kmix-train", untagged_keys=("model", "model_meta"))["model"] == 1
    with pytest.raises(ValueError, match="not a kmix-train"):
        load_state(tmp_path / "old.pt", "kmix-train", untagged_keys=("model", "optimizer"))
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="checkpoint .*bad.pt is corrupt"):
        load_state(tmp_path / "bad.pt", "kmix-train", label="checkpoint")
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*absent.pt"):
        load_state(tmp_path / "absent.pt", "kmix-train", label="checkpoint")


def test_rng_state_round_trip_restores_every_generator():
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def _hold(folder, ready, release):
    with lock_run_folder(folder, "holder"):
        ready.set()
        release.wait(30)


def test_second_process_into_a_locked_folder_is_refused_and_a_dead_holder_frees_it(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunFolderBusy, match=rf"{tmp_path} is in use by holder \(pid {holder.pid} on .*\); wait"):
            with lock_run_folder(tmp_path):
                pass
        with pytest.raises(RunFolderBusy):  # kmix train refuses too, before writing anything
            fit(TrainConfig(epochs=1, out=str(tmp_path), quiet=True))
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]
    finally:
        holder.kill()  # dies holding the lock, as a kill -9 would leave it
        holder.join()
    with lock_run_folder(tmp_path, "next"):  # taken over: the OS dropped the dead holder's lock
        assert "next" in (tmp_path / LOCK_NAME).read_text()


def test_taking_the_lock_removes_temp_files_of_killed_writes_only(tmp_path):
    (tmp_path / "last.pt.ab12_x9Z.tmp").write_bytes(b"half a checkpoint")  # what a kill inside a write leaves
    (tmp_path / "notes.tmp").write_text("the user's")
    (tmp_path / "last.pt").write_bytes(b"whole")
    with lock_run_folder(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LOCK_NAME, "last.pt", "notes.tmp"])


def test_every_seed_outside_the_mixers_comes_from_seed_for():
    """A generator seeded from a plain seed would draw what another use of the same seed draws; kmix/runs.py
    derives them all. kmix/mix/ takes its generators as arguments; mc-dropout's caller passes a derived seed."""
    import re

    seeding = re.compile(r"manual_seed\(|default_rng\(|random\.Random\(|np\.random\.seed\(|random\.seed\(")
    allowed = {"kmix/runs.py", "kmix/select/baselines.py"}
    root = Path(__file__).resolve().parents[1]
    plain = [f"{path.relative_to(root)}:{n}: {line.strip()}"
             for path in sorted((root / "kmix").rglob("*.py")) if not path.is_relative_to(root / "kmix" / "mix")
             and str(path.relative_to(root)) not in allowed
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if seeding.search(line) and "seed_for(" not in line]
    assert not plain, "seeded outside kmix.runs.seed_for/generator_for:\n" + "\n".join(plain)
