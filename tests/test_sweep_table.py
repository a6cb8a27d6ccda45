"""`kmix table`: grouping (never across data/model/epochs/any result-defining field, always across seeds
and operational fields), exact mean/std read from run folders, unfinished runs left out, CLI, curves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kmix.cli.main import main
from kmix.io import write_json_atomic, write_text_atomic
from kmix.sweep import build_table, find_runs, write_table
from kmix.sweep.table import to_markdown
from kmix.sweep.curves import group_curve
from kmix.train.config import TrainConfig, save_config


def make_run(root: Path, name: str, seed: int, top1: list[float], top5: list[float], *, finished: bool = True,
             **config) -> Path:
    """A run folder as `kmix train` writes it: config.yaml, metrics.jsonl and (when finished) summary.json
    (error keys prefixed train_ when the run evaluated on its training images)."""
    path = root / name / f"seed{seed}"
    cfg = TrainConfig(**{"epochs": len(top1), **config}, seed=seed, out=str(path))
    save_config(cfg, path / "config.yaml")
    p, split = ("train_", "train") if cfg.eval_on_train else ("", "test")
    done = len(top1) if finished else len(top1) - 1
    history = [{"epoch": e + 1, f"{p}top1_err": top1[e], f"{p}top5_err": top5[e], "train_loss": 1.0}
               for e in range(done)]
    write_text_atomic(path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    if finished:
        write_json_atomic(path / "summary.json", {
            f"{p}top1_err": top1[-1], f"{p}top5_err": top5[-1], f"best_{p}top1_err": min(top1), "epochs": len(top1),
            "wall_s": 10.0 + seed, "img_per_s": 100.0 * (seed + 1), "params": 1234, "eval_split": split,
            "eval_images": 360})
    return path


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "sweep"
    make_run(root, "vanilla", 0, [50.0, 30.0, 20.0], [9.0, 5.0, 4.0], mix="none")
    make_run(root, "vanilla", 1, [52.0, 28.0, 24.0], [8.0, 3.0, 6.0], mix="none", device="cpu", threads=1)
    make_run(root, "dcutmix", 0, [60.0, 35.0, 21.0], [9.0, 7.0, 5.0], mix="dcutmix", k=3, alpha=1 / 3)
    make_run(root, "dcutmix", 1, [61.0, 33.0, 19.0], [9.0, 6.0, 5.0], mix="dcutmix", k=3, alpha=1 / 3)
    make_run(root, "dcutmix", 2, [60.0, 34.0, 30.0], [9.0, 6.0, 5.0], mix="dcutmix", k=3, alpha=1 / 3,
             finished=False)
    # differ from the dcutmix rows only in epochs / data / lr: three more groups, never pooled
    make_run(root, "dcutmix_e4", 0, [60.0, 35.0, 21.0, 18.0], [9.0, 7.0, 5.0, 4.0], mix="dcutmix", k=3, alpha=1 / 3)
    make_run(root, "dcutmix_c10", 0, [70.0, 60.0, 55.0], [20.0, 15.0, 12.0], mix="dcutmix", k=3, alpha=1 / 3,
             data="cifar10")
    make_run(root, "dcutmix_lr", 0, [65.0, 40.0, 25.0], [9.0, 7.0, 6.0], mix="dcutmix", k=3, alpha=1 / 3, lr=0.05)
    return root


def _row(table, **match):
    rows = [r for r in table.rows if all(r.get(k) == v for k, v in match.items())]
    assert len(rows) == 1, (match, rows)
    return rows[0]


def test_groups_pool_seeds_only_and_figures_are_exact(runs):
    table = build_table(find_runs([runs]))
    assert len(table.rows) == 5
    assert "lr" in table.shown and "data" in table.shown and "seed" not in table.shown
    vanilla = _row(table, mix="none")  # seeds 0 and 1 pooled although device/threads differ
    assert vanilla["n"] == 2 and vanilla["seeds"] == "0;1"
    assert vanilla["top1_err_mean"] == pytest.approx(22.0) and vanilla["top1_err_std"] == pytest.approx(np.sqrt(8))
    assert vanilla["best_top1_err_mean"] == pytest.approx(22.0)  # min over epochs: 20 and 24
    assert vanilla["top5_err_mean"] == pytest.approx(5.0) and vanilla["best_top5_err_mean"] == pytest.approx(3.5)
    assert vanilla["wall_s_mean"] == pytest.approx(10.5) and vanilla["wall_s_total"] == pytest.approx(21.0)
    assert vanilla["img_per_s_mean"] == pytest.approx(150.0) and vanilla["params"] == 1234
    dc = _row(table, mix="dcutmix", epochs=3, data="digits", lr=0.1)
    assert dc["n"] == 2 and dc["top1_err_mean"] == pytest.approx(20.0) and dc["k"] == 3
    assert _row(table, epochs=4)["n"] == 1 and _row(table, epochs=4)["top1_err_std"] is None
    assert _row(table, data="cifar10")["top1_err_mean"] == pytest.approx(55.0)
    assert _row(table, lr=0.05)["top1_err_mean"] == pytest.approx(25.0)
    # the unfinished seed 2 is listed, not counted
    assert [r.path.name for r in table.left_out] == ["seed2"]
    assert {c for c in table.columns if "err" in c} == {
        f"{m}_{s}" for m in ("top1_err", "best_top1_err", "top5_err", "best_top5_err") for s in ("mean", "std")}


def test_group_curve_is_the_mean_and_std_over_seeds(runs):
    table = build_table(find_runs([runs]))
    group = next(g for g in table.groups if g.key["mix"] == "none")
    epochs, mean, std = group_curve(group)
    assert epochs.tolist() == [1, 2, 3]
    np.testing.assert_allclose(mean, [51.0, 29.0, 22.0])
    np.testing.assert_allclose(std, np.std([[50, 30, 20], [52, 28, 24]], axis=0, ddof=1))


def test_cli_writes_markdown_csv_and_png(runs, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["table", str(runs / "vanilla"), str(runs / "dcutmix"), "--out", str(out)]) == 0
    md = (out / "table.md").read_text()
    assert capsys.readouterr().out == md
    assert "| vanilla |" in md and "22.00 ± 2.83" in md and "top1_err (%)" in md
    assert "Left out, unfinished (1)" in md and "seed2 (2/3 epochs)" in md
    rows = (out / "table.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("data,model,epochs,mix,k,alpha,p,n,seeds,top1_err_mean")
    import csv

    by_mix = {r["mix"]: r for r in csv.DictReader(rows)}  # the csv holds the markdown's figures, unrounded
    assert float(by_mix["none"]["top1_err_mean"]) == 22.0 and float(by_mix["dcutmix"]["top1_err_mean"]) == 20.0
    assert float(by_mix["none"]["top1_err_std"]) == pytest.approx(np.std([20.0, 24.0], ddof=1))
    assert by_mix["none"]["n"] == by_mix["dcutmix"]["n"] == "2"  # the unfinished seed is left out
    from matplotlib.image import imread

    png = imread(out / "curves.png")
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100 and png[..., :3].std() > 0  # a drawn figure
    # one RUN_DIR: the table goes there
    assert main(["table", str(runs / "vanilla"), "--no-plot"]) == 0
    assert (runs / "vanilla" / "table.md").is_file() and not (runs / "vanilla" / "curves.png").exists()


def test_cli_errors_name_the_problem(runs, tmp_path, capsys):
    assert main(["table", str(runs / "vanilla"), str(runs / "dcutmix")]) == 2
    assert "--out is needed" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["table", str(tmp_path / "empty")]) == 2
    assert "no run folders" in capsys.readouterr().err
    only_unfinished = tmp_path / "u"
    make_run(only_unfinished, "x", 0, [1.0, 2.0], [1.0, 1.0], finished=False)
    assert main(["table", str(only_unfinished)]) == 2
    assert "no finished runs" in capsys.readouterr().err
    (runs / "vanilla" / "seed0" / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="summary.json is not JSON"):
        write_table([runs], tmp_path / "t")


def test_runs_evaluated_on_training_images_are_their_own_rows_and_say_so(runs, tmp_path):
    make_run(runs, "vanilla_on_train", 0, [40.0, 10.0, 2.0], [5.0, 1.0, 0.0], mix="none", eval_on_train=True)
    table = write_table([runs], tmp_path / "t")
    assert "eval_split" in table.shown
    on_train = _row(table, mix="none", eval_split="train")
    assert on_train["n"] == 1 and on_train["top1_err_mean"] == 2.0 and on_train["best_top5_err_mean"] == 0.0
    assert _row(table, mix="none", eval_split="test")["n"] == 2
    assert "| train |" in (tmp_path / "t" / "table.md").read_text()


def test_version_1_cutmix_records_stay_dcutmix_k2_and_are_never_pooled_with_the_fields_cutmix(tmp_path):
    # a record written before the field's CutMix: its config.yaml says mix: cutmix and has no mix_version
    old = make_run(tmp_path, "old_cutmix", 0, [30.0], [3.0], mix="cutmix", alpha=1.0, p=0.5)
    values = (old / "config.yaml").read_text().splitlines()
    (old / "config.yaml").write_text("\n".join(v for v in values if not v.startswith(
        ("mix_version", "mix_mode", "partners", "keep_last_batch", "norm_mean", "norm_std"))) + "\n")
    make_run(tmp_path, "new_cutmix", 0, [29.0], [3.0], mix="cutmix", alpha=1.0, p=0.5)
    make_run(tmp_path, "dcutmix_k2", 1, [31.0], [3.0], mix="dcutmix", k=2, alpha=1.0, p=0.5)
    table = build_table(find_runs([tmp_path]))
    rows = {(r["mix"], r["n"], r["seeds"]) for r in table.rows}
    assert rows == {("cutmix", 1, "0"), ("dcutmix", 2, "0;1")}  # the old record pooled with DCutMix K=2 only
    text = to_markdown(table)
    assert "| dcutmix K=2 (box inside) | 2 |" in text and "| cutmix | 2 |" in text


def _fingerprint(run: Path, value: str) -> None:
    summary = json.loads((run / "summary.json").read_text())
    write_json_atomic(run / "summary.json", {**summary, "data_fingerprint": value})


def test_a_run_recorded_before_fingerprints_pools_only_with_the_one_matching_fingerprinted_group(tmp_path):
    """An older summary without data_fingerprint joins the group equal in every other key when exactly one
    such group has a fingerprint; runs on different data (two fingerprints) never pool, with it or each other."""
    root = tmp_path / "r"
    make_run(root, "old", 0, [50.0, 30.0], [9.0, 5.0], mix="none")  # no fingerprint
    _fingerprint(make_run(root, "new", 1, [52.0, 28.0], [8.0, 3.0], mix="none"), "aaa")
    table = write_table([root], tmp_path / "t")
    assert len(table.rows) == 1 and table.rows[0]["n"] == 2 and table.rows[0]["top1_err_mean"] == 29.0
    _fingerprint(make_run(root, "other", 2, [60.0, 40.0], [9.0, 5.0], mix="none"), "bbb")  # other data
    table = write_table([root], tmp_path / "t2")
    assert sorted(r["n"] for r in table.rows) == [1, 1, 1]  # ambiguous: nothing pools
