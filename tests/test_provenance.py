"""Artifacts carry what they were made from and consumers check it (issue 14's P-rows): a subset made from
another dataset, a scores file cut short or holding an infinite score."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kmix.cli.main import main
from kmix.data import save_indices
from kmix.select.scores_file import read_scores, write_score_table
from kmix.train import TrainConfig, fit


def test_subset_made_from_another_dataset_is_refused_before_training(tmp_path, capsys):
    """P6: indices of a 50,000-image set are all valid positions in digits' 1,437, and named other images."""
    subset = tmp_path / "c10.json"
    save_indices(subset, list(range(0, 1000, 5)), data="cifar10", n_total=50000)
    with pytest.raises(ValueError, match=r"c10.json was made from a dataset of 50000 images \(data 'cifar10'\), "
                                         r"but this one has 1437"):
        fit(TrainConfig(subset=str(subset), epochs=1, out=str(tmp_path / "run"), quiet=True))
    assert not (tmp_path / "run").exists()
    assert main(["train", "--subset", str(subset), "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    assert "made from a dataset of 50000 images" in capsys.readouterr().err
    save_indices(tmp_path / "digits.json", [0, 1, 2], data="digits", n_total=1437)  # the right one is taken
    from kmix.data import load_indices

    assert load_indices(tmp_path / "digits.json", 1437) == [0, 1, 2]


def _scores(path, cv, n=None):
    labels = np.arange(len(cv)) % 2
    write_score_table(path, labels, {"cv": np.asarray(cv, dtype=float)}, {"method": "custom", "score_columns": ["cv"], "n": n or len(cv)})


def test_scores_file_cut_at_a_row_boundary_is_refused(tmp_path):
    """P6: a CSV cut after 699 of 1,437 rows parses, but its sidecar says how many images were scored."""
    path = tmp_path / "s.csv"
    _scores(path, np.linspace(0.1, 1, 10))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:7]))  # header + 6 rows
    with pytest.raises(ValueError, match=r"s.csv has 6 rows but s.csv.json says 10 images were scored"):
        read_scores(path)


def test_an_infinite_score_is_refused_naming_file_column_and_index(tmp_path, capsys):
    """P14: cv=inf used to be ranked first."""
    path = tmp_path / "s.csv"
    _scores(path, [0.1, 0.2, float("inf"), 0.3])
    with pytest.raises(ValueError, match=r"scores file .*s.csv: column 'cv' is infinite at index 2"):
        read_scores(path)
    assert main(["subsample", "--scores", str(path), "--by", "cv", "--ratio", "0.5",
                 "--out", str(tmp_path / "sub.json")]) == 2
    assert "column 'cv' is infinite at index 2" in capsys.readouterr().err


def test_a_nan_score_names_the_file(tmp_path, capsys):
    path = tmp_path / "s.csv"
    _scores(path, [0.1, float("nan"), 0.2, 0.3])
    assert main(["subsample", "--scores", str(path), "--by", "cv", "--ratio", "0.5",
                 "--out", str(tmp_path / "sub.json")]) == 2
    err = capsys.readouterr().err
    assert f"--scores {path} column 'cv': scores contain NaN at index 1" in err
    assert not (tmp_path / "sub.json").exists()
    json.dumps(err)  # one line of text, no traceback
    assert "Traceback" not in err


def _rgb_checkpoint(path, classes, input_size=16):
    """A small_cnn checkpoint whose meta says it was trained on RGB `classes` at `input_size` px."""
    import torch

    from kmix.data.info import DatasetInfo
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    info = DatasetInfo("folder", len(classes), 3, input_size, (0.5,) * 3, (0.25,) * 3, tuple(classes))
    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=len(classes), in_chans=3, width=4)
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", info, width=4)})
    return path


def test_score_refuses_data_whose_classes_are_not_the_models(tmp_path, capsys):
    """P3: a 10-class model scored on a 2-class folder (a, b) scored label 0 as the model's class 0."""
    from data_sources import CIFAR10_CLASSES, tiny_imagefolder

    folder = tiny_imagefolder(tmp_path / "folder")
    ckpt = _rgb_checkpoint(tmp_path / "c10.pt", CIFAR10_CLASSES)
    for method in ("el2n", "kmix-cv"):
        out = tmp_path / f"{method}.csv"
        assert main(["score", "--method", method, "--checkpoint", str(ckpt), "--data", str(folder),
                     "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "has classes [a, b] but checkpoint" in err and "trained on [airplane, automobile" in err, err
        assert not out.exists()


def test_checkpoint_consumers_load_imagefolder_data_at_the_checkpoints_size(tmp_path):
    """P2: data for a model trained at 16 px was loaded at 224 px."""
    from data_sources import tiny_imagefolder

    from kmix.data.for_model import train_data_for_model
    from kmix.train.checkpoint import load_checkpoint

    folder = tiny_imagefolder(tmp_path / "folder")
    meta = load_checkpoint(_rgb_checkpoint(tmp_path / "ab.pt", ["a", "b"], input_size=16))["model_meta"]
    dataset, info = train_data_for_model(str(folder), meta)
    assert dataset[0][0].shape == (3, 16, 16) and info.class_names == ("a", "b")
    assert main(["score", "--method", "el2n", "--checkpoint", str(tmp_path / "ab.pt"), "--data", str(folder),
                 "--out", str(tmp_path / "s.csv"), "--quiet"]) == 0
    from kmix.analysis.evaluate import EvalConfig, run_eval

    at_ckpt = run_eval(EvalConfig(checkpoint=str(tmp_path / "ab.pt"), data=str(folder), quiet=True))
    at_16 = run_eval(EvalConfig(checkpoint=str(tmp_path / "ab.pt"), data=str(folder), image_size=16, quiet=True))
    assert at_ckpt["top1_err"] == at_16["top1_err"]


def test_model_baselines_refuse_data_with_other_channels(tmp_path, capsys):
    """P7: mc-dropout and k-center converted digits' 1 channel to 3 silently."""
    ckpt = _rgb_checkpoint(tmp_path / "rgb.pt", [str(i) for i in range(10)])
    for by in ("mc-dropout", "k-center"):
        assert main(["subsample", "--by", by, "--checkpoint", str(ckpt), "--data", "digits", "--ratio", "0.1",
                     "--out", str(tmp_path / "sub.json"), "--quiet"]) == 2
        assert "expects 3 channel(s) but --data 'digits' has 1" in capsys.readouterr().err
    assert not (tmp_path / "sub.json").exists()


def test_artifacts_record_what_they_were_made_from(tmp_path):
    """Checkpoints, scores sidecars and subset files carry the data's record and the content hashes."""
    from kmix.io import file_sha256
    from kmix.train.checkpoint import load_checkpoint

    run = tmp_path / "run"
    fit(TrainConfig(epochs=1, limit_train_batches=2, out=str(run), quiet=True, tensorboard=False, plot=False))
    prov = load_checkpoint(run / "last.pt")["model_meta"]["provenance"]
    assert prov["data"] == "digits" and prov["num_images"] == 1437 and prov["in_chans"] == 1
    assert prov["classes"] == [str(i) for i in range(10)] and prov["image_size"] == 16
    scores = tmp_path / "s.csv"
    assert main(["score", "--method", "el2n", "--checkpoint", str(run / "last.pt"), "--out", str(scores),
                 "--quiet"]) == 0
    meta = read_scores(scores).meta
    assert meta["checkpoint_sha256"] == [file_sha256(run / "last.pt")] and meta["data_provenance"] == prov
    assert main(["subsample", "--scores", str(scores), "--by", "el2n", "--ratio", "0.1", "--data", "digits",
                 "--out", str(tmp_path / "sub.json")]) == 0
    record = json.loads((tmp_path / "sub.json").read_text())
    assert record["scores_sha256"] == file_sha256(scores) and record["data_provenance"] == prov
    # a consumer compares the class names: the same indices claimed for other classes are refused
    record["data_provenance"]["classes"] = [f"c{i}" for i in range(10)]
    (tmp_path / "other.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"other.json was made from a dataset with classes \['c0'"):
        fit(TrainConfig(subset=str(tmp_path / "other.json"), epochs=1, out=str(tmp_path / "r2"), quiet=True))


def test_a_broken_test_image_is_found_before_the_first_epoch(tmp_path):
    """P10: without --check-images the bad test image surfaced at the first evaluation, the epoch lost."""
    from data_sources import tiny_imagefolder

    folder = tiny_imagefolder(tmp_path / "folder")
    bad = sorted((folder / "val" / "b").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    cfg = TrainConfig(data=str(folder), image_size=16, model="small_cnn", model_kwargs={"width": 4}, epochs=1,
                      batch_size=8, loader="workers", out=str(tmp_path / "run"), quiet=True, tensorboard=False)
    with pytest.raises(ValueError, match=rf"1 unreadable image\(s\) in the val split of .*folder: {bad}"):
        fit(cfg)
    assert not (tmp_path / "run").exists()  # refused before any work
    bad.unlink()
    fit(cfg)
    records = [json.loads(m.read_text()) for m in Path(os.environ["KMIX_CACHE_DIR"]).glob("readable-*.json")]
    mine = [r for r in records if r["root"] == str((folder / "val").resolve())]
    assert len(mine) == 1 and mine[0]["images"] == 7  # checked once, remembered


@pytest.mark.parametrize("change", ["rename", "drop"])
def test_a_test_split_with_other_class_folders_is_refused(tmp_path, change):
    """P1: each split numbered its own folders, so test label 1 could be another class than train label 1."""
    import shutil

    from data_sources import tiny_imagefolder

    folder = tiny_imagefolder(tmp_path / "folder")
    if change == "rename":
        (folder / "val" / "b").rename(folder / "val" / "kitty")
    else:
        shutil.rmtree(folder / "val" / "a")
    cfg = TrainConfig(data=str(folder), image_size=16, model="small_cnn", model_kwargs={"width": 4}, epochs=1,
                      batch_size=8, loader="workers", out=str(tmp_path / "run"), quiet=True)
    with pytest.raises(ValueError, match=r"the evaluation split's classes \[.*\] differ from the training "
                                         r"split's \['a', 'b'\]; labels would not match"):
        fit(cfg)
    assert not (tmp_path / "run").exists()
