"""Artifacts carry what they were made from and consumers check it (issue 14's P-rows): a subset made from
another dataset, a scores file cut short or holding an infinite score."""
from __future__ import annotations

import json

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
