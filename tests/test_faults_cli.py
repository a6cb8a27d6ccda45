"""Issue 22, command-line cases: a resume with fewer epochs, tables pooling different data behind one path,
misleading continue hints, errors without their command's name, silent partner repeats."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from kmix.cli.main import continue_command, main
from kmix.sweep import build_table, find_runs
from kmix.train import TrainConfig, fit

from data_sources import tiny_imagefolder

TINY = ["--model", "small_cnn", "--model-arg", "width=8", "--batch-size", "32", "--limit-train-batches", "3",
        "--no-tensorboard", "--no-plot", "--quiet", "--seed", "3"]


def test_w5_resume_with_fewer_epochs_than_trained_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    summary = (out / "summary.json").read_text()
    config = (out / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kmix train: error: cannot resume {out / 'last.pt'} with epochs=1: the run has already "
                          "trained 2 epoch(s); pass --epochs 2 or more") and err.count("\n") == 1
    assert (out / "summary.json").read_text() == summary and (out / "config.yaml").read_text() == config
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3"]) == 0  # more epochs: continues
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_w6_table_never_pools_runs_on_different_data_behind_the_same_path(tmp_path, monkeypatch):
    # two folders, each with its own `imgs` (different images and counts), trained as `--data imgs` from each
    for name, drop in (("a", 0), ("b", 4)):
        root = tiny_imagefolder(tmp_path / name / "imgs")
        for png in sorted((root / "train" / "a").glob("*.png"))[:drop]:
            png.unlink()
        monkeypatch.chdir(tmp_path / name)
        fit(TrainConfig(data="imgs", image_size=16, model="small_cnn", model_kwargs={"width": 8}, mix="none",
                        epochs=1, batch_size=4, out=str(tmp_path / "runs" / name / "seed0"), quiet=True,
                        tensorboard=False, plot=False))
    summaries = [json.loads((tmp_path / "runs" / n / "seed0" / "summary.json").read_text()) for n in "ab"]
    assert summaries[0]["data_fingerprint"] != summaries[1]["data_fingerprint"]
    table = build_table(find_runs([tmp_path / "runs"]))
    assert [r["n"] for r in table.rows] == [1, 1]  # two rows, never one row of n = 2


def test_w11_ctrl_c_before_the_run_is_saved_hints_the_original_command():
    class Interrupted(KeyboardInterrupt):
        out = "/no/such/run/folder"  # the folder a run would have used; nothing was written there

    argv = ["train", "--data", "cifar10", "--data-root", "c10.tar.gz", "--epochs", "2"]
    assert continue_command("train", argv, Interrupted()) == "kmix " + shlex.join(argv)


def test_w11_resume_of_a_folder_without_a_run_is_an_error(tmp_path, capsys):
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["train", "--resume", "--out", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err == (f"kmix train: error: cannot resume {empty}: it holds no run (no config.yaml); start the run with "
                   "its original command (a --recipe or flags, without --resume)\n")
    assert list(empty.iterdir()) == []  # the defaults' digits run was not trained there


def test_r5_ctrl_c_in_score_says_how_to_continue():
    argv = ["score", "--run", "r", "--out", "s.csv"]
    assert continue_command("score", argv, KeyboardInterrupt()) == "kmix score --run r --out s.csv"


@pytest.mark.parametrize("argv, unknown", [(["train", "--no-such-option"], "--no-such-option"),
                                           (["table", "x", "--bogus", "1"], "--bogus 1")])
def test_unknown_options_name_their_command(argv, unknown, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"kmix {argv[0]}: error: unrecognized arguments: {unknown}"


def test_missing_cifar_hint_names_the_command_that_downloads(tmp_path, capsys):
    assert main(["show", "--data", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "kmix train --data cifar10" in err and "--download" in err and "pass --download" not in err


def test_k_above_the_batch_warns_that_partners_repeat(tmp_path, capsys):
    assert main(["train", *TINY, "--batch-size", "8", "--mix", "dcutmix", "--k", "12", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "kmix train: warning: k=12 images per sample from a pool of 8" in err
    assert main(["train", *TINY, "--batch-size", "8", "--mix", "dcutmix", "--k", "8", "--epochs", "1",
                 "--out", str(tmp_path / "ok")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_r6_a_deleted_middle_row_of_a_scores_csv_names_the_missing_index(tmp_path):
    from kmix.select.scores_file import read_scores

    csv = tmp_path / "scores.csv"
    csv.write_text("index,label,el2n\n" + "".join(f"{i},{i % 3},{i / 10}\n" for i in range(1000)))
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:501] + lines[502:]))  # the row of index 500
    with pytest.raises(ValueError) as err:
        read_scores(csv)
    message = str(err.value)
    assert "1 index(es) missing (500)" in message and "\n" not in message and "out of range" not in message
