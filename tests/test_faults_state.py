"""Issue 22's state-file rows (docs/reliability.md, W7-W10): a damaged or edited file that kmix reads back, or
a subset made from look-alike data, is found and named instead of silently giving wrong numbers."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kmix.cli.main import main
from kmix.io import ChecksumError, save_torch_atomic, verify_torch_checksum
from kmix.runs import load_state
from kmix.train import TrainConfig, fit
from kmix.train.checkpoint import TRAIN_KIND, load_checkpoint

from data_sources import tar_tree, write_cifar_tree


def tiny(out, **kw) -> TrainConfig:
    """A run of a few seconds (tests/test_train_fit.py's)."""
    base = dict(data="digits", model="small_cnn", model_kwargs={"width": 8}, mix="dcutmix", k=3, alpha=1.0,
                epochs=2, batch_size=32, lr=0.05, limit_train_batches=5, out=str(out), quiet=True,
                tensorboard=False, plot=False, seed=3)
    return TrainConfig(**{**base, **kw})


def flip_middle(path: Path, count: int = 64) -> None:
    """Invert `count` bytes in the middle of the file (what a bad disk sector or a broken copy leaves)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# --- W7: checkpoints and every other torch state file ------------------------------------------------

def test_w7_corrupted_checkpoint_is_refused_by_resume_and_score(tmp_path, capsys):
    """64 flipped bytes in last.pt: resume trained on and score scored, exit 0. Now exit 2 naming the file."""
    out = tmp_path / "run"
    fit(tiny(out))
    assert torch.load(out / "last.pt", weights_only=False)["kind"] == TRAIN_KIND  # still a plain torch file
    assert verify_torch_checksum(out / "last.pt") and verify_torch_checksum(out / "best.pt")
    flip_middle(out / "last.pt")
    with pytest.raises(ChecksumError, match=r"checkpoint .*last.pt is corrupt: its content does not match"):
        fit(tiny(out, epochs=3, resume=True))
    assert main(["train", "--resume", "--epochs", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "last.pt is corrupt" in err and len(err.strip().splitlines()) == 1
    assert main(["score", "--checkpoint", str(out / "last.pt"), "--draws", "2", "--chunk-size", "500",
                 "--out", str(tmp_path / "s.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "kmix score: error: checkpoint" in err and "last.pt is corrupt" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.csv").exists()


def test_w7_checkpoints_written_before_checksums_still_load(tmp_path):
    """A file without a checksum (written by an older kmix, e.g. a sweep's last.pt) is accepted as before;
    so is a good one, and torch.load still reads both."""
    out = tmp_path / "run"
    fit(tiny(out, epochs=1))
    state = torch.load(out / "last.pt", weights_only=False)
    old = tmp_path / "old" / "last.pt"
    old.parent.mkdir()
    torch.save(state, old)  # what kmix wrote before: no archive comment
    assert verify_torch_checksum(old) is False
    again = load_checkpoint(old)
    assert again["model"].keys() == state["model"].keys()
    shutil.copy(out / "config.yaml", old.parent / "config.yaml")
    summary = fit(tiny(old.parent, epochs=2, resume=True))  # a run resumed from its old-format last.pt
    assert summary["steps"] == 10 and verify_torch_checksum(old)  # the next save carries a checksum


def test_w7_every_torch_state_file_carries_a_verified_checksum(tmp_path, capsys):
    """dynamics.pt, a search checkpoint, a score chunk: written with a checksum, a flip is refused by name."""
    from kmix.search.loop import SEARCH_KIND

    out = tmp_path / "dyn"
    fit(tiny(out, epochs=1, record_dynamics=True))
    assert verify_torch_checksum(out / "dynamics.pt")
    flip_middle(out / "dynamics.pt")
    assert main(["score", "--method", "forgetting", "--run", str(out), "--out", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert "dynamics file" in err and "dynamics.pt is corrupt" in err and len(err.strip().splitlines()) == 1
    for kind, label in ((SEARCH_KIND, "search checkpoint"), ("kmix-score-chunk", "score chunk")):
        path = tmp_path / f"{kind}.pt"
        save_torch_atomic(path, {"kind": kind, "weights": torch.arange(4096, dtype=torch.float32)})
        assert load_state(path, kind, label=label)["weights"].sum() == 4095 * 4096 / 2
        flip_middle(path)
        with pytest.raises(ChecksumError, match=rf"{label} .*{kind}.pt is corrupt"):
            load_state(path, kind, label=label)


# --- W8: a corrupted score chunk is a cache miss -----------------------------------------------------

def _digits_checkpoint(path: Path) -> None:
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=1, width=8)
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=8)})


def test_w8_corrupted_score_chunk_is_scored_again_with_a_note(tmp_path, capsys):
    """A flipped chunk used to go into the CSV (negative cross-entropies). Now: a note, the chunk is scored
    again, and the CSV is byte-identical to an undisturbed run's."""
    from kmix.select.score import ScoreConfig, ScoreSpec, run_score

    ckpt, out = tmp_path / "m.pt", tmp_path / "s.csv"
    _digits_checkpoint(ckpt)

    def config(path, **kw):
        return ScoreConfig(checkpoint=str(ckpt), out=str(path), spec=ScoreSpec(draws=2, chunk_size=500), quiet=True,
                           **kw)

    assert run_score(config(tmp_path / "ref.csv"))["complete"]
    assert run_score(config(out, rank=1, world_size=2))["complete"] is False  # chunk 1 saved, as by a stopped run
    chunk = tmp_path / "s.csv.chunks" / "chunk_000001.pt"
    flip_middle(chunk)
    capsys.readouterr()
    summary = run_score(config(out))
    assert summary["complete"] and summary["scored_composites"] == 1437 * 2  # chunk 1 was scored again
    err = capsys.readouterr().err
    assert "kmix score: note: score chunk" in err and "chunk_000001.pt is corrupt" in err
    assert "scoring chunk 1 again" in err
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    with open(out) as f:
        losses = [float(r["loss_0"]) for r in csv.DictReader(f)]
    assert min(losses) >= 0


# --- W9: edited labels in a scores file -------------------------------------------------------------

def test_w9_edited_label_in_a_scores_file_is_refused(tmp_path, capsys):
    """Without --data, subsample takes the labels from the CSV; one edited label went unseen."""
    from kmix.select.scores_file import read_scores, write_score_table

    path = tmp_path / "s.csv"
    labels = np.arange(40) % 4
    write_score_table(path, labels, {"cv": np.linspace(0.1, 1.0, 40)},
                      {"method": "custom", "score_columns": ["cv"], "n": 40})
    assert main(["subsample", "--scores", str(path), "--by", "cv", "--ratio", "0.5",
                 "--out", str(tmp_path / "ok.json")]) == 0
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[6].split(",")  # index 5, label 1
    assert fields[:2] == ["5", "1"]
    lines[6] = ",".join(["5", "3", *fields[2:]])
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"s.csv: its label column is not the one s.csv.json recorded"):
        read_scores(path)
    assert main(["subsample", "--scores", str(path), "--by", "cv", "--ratio", "0.5",
                 "--out", str(tmp_path / "sub.json")]) == 2
    err = capsys.readouterr().err
    assert "s.csv: its label column is not the one s.csv.json recorded" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sub.json").exists()


# --- W10: a subset from look-alike data -------------------------------------------------------------

def _two_cifar_sources(tmp_path: Path) -> tuple[Path, Path]:
    """Two CIFAR-10 tarballs of the same size and classes, different images (as the pickles and the JPEG
    tarball number the same images differently)."""
    a = tar_tree(write_cifar_tree(tmp_path / "tree_a", n_train=4, n_test=2, seed=0), tmp_path / "a.tar.gz")
    b = tar_tree(write_cifar_tree(tmp_path / "tree_b", n_train=4, n_test=2, seed=1), tmp_path / "b.tar.gz")
    return a, b


def test_w10_subset_made_from_look_alike_data_is_refused(tmp_path, capsys):
    from kmix.select.scores_file import write_score_table

    a, b = _two_cifar_sources(tmp_path)
    sub = tmp_path / "sub.json"
    assert main(["subsample", "--data", "cifar10", "--data-root", str(a), "--by", "random", "--ratio", "0.5",
                 "--out", str(sub)]) == 0
    train = ["train", "--data", "cifar10", "--model", "small_cnn", "--model-arg", "width=4", "--epochs", "1",
             "--batch-size", "10", "--no-tensorboard", "--no-plot", "--quiet", "--subset"]
    assert main([*train, str(sub), "--data-root", str(b), "--out", str(tmp_path / "rb")]) == 2
    err = capsys.readouterr().err
    assert "sub.json was made from other data files" in err and "may order images differently" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "rb").exists()
    assert main([*train, str(sub), "--data-root", str(a), "--out", str(tmp_path / "ra")]) == 0  # its own data
    # without --data, the subset carries the record of the data its scores were made from
    from kmix.data.provenance import data_provenance
    from kmix.data.registry import build_dataset

    dataset, info = build_dataset("cifar10", root=str(a), train=True)
    scores = tmp_path / "s.csv"
    write_score_table(scores, np.asarray(dataset.targets), {"cv": np.linspace(0.1, 1.0, len(dataset))},
                      {"method": "custom", "score_columns": ["cv"], "n": len(dataset),
                       "data_provenance": data_provenance("cifar10", info, len(dataset), str(a))})
    sub2 = tmp_path / "sub2.json"
    assert main(["subsample", "--scores", str(scores), "--by", "cv", "--ratio", "0.5", "--out", str(sub2)]) == 0
    capsys.readouterr()
    assert main([*train, str(sub2), "--data-root", str(b), "--out", str(tmp_path / "rb2")]) == 2
    assert "sub2.json was made from other data files" in capsys.readouterr().err
