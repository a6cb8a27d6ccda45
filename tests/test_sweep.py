"""`kmix sweep`: the grid it plans, the errors it raises before training, and the property that matters:
a sweep SIGKILLed mid-run and restarted ends with the same table as an uninterrupted one (digits)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmix.cli.config_args import given_values
from kmix.cli.main import build_parser, main
from kmix.options import parse_value
from kmix.sweep import SweepConfig, plan_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
# tiny digits runs: ~1 s each with one thread; checkpoints every 2 steps so that a kill lands mid-run
TINY = {"epochs": 2, "limit_train_batches": 5, "batch_size": 32, "ckpt_every_steps": 2, "threads": 1,
        "tensorboard": False, "plot": False}


def _recipe(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def test_plan_is_recipes_x_grid_x_seeds_seed_major(tmp_path):
    a = _recipe(tmp_path, "a", "mix: dcutmix\nk: 5\nlr: 0.05\n")
    b = _recipe(tmp_path, "b", "mix: dmixup\n")
    plan = plan_sweep(SweepConfig(recipes=(a, b), overrides={"epochs": 7, "lr": 0.2}, grid={"k": [3, 4]},
                                  seeds=(1, 0), out=str(tmp_path / "s")))
    assert [(r.label, r.seed) for r in plan] == [
        ("a+k=3", 1), ("a+k=4", 1), ("b+k=3", 1), ("b+k=4", 1), ("a+k=3", 0), ("a+k=4", 0), ("b+k=3", 0), ("b+k=4", 0)]
    first = plan[0].config
    assert (first.mix, first.k, first.lr, first.epochs, first.seed, first.resume) == ("dcutmix", 3, 0.2, 7, 1, True)
    assert first.quiet and first.out == str(tmp_path / "s" / "a+k=3" / "seed1")
    assert plan[2].config.mix == "dmixup" and len({r.out for r in plan}) == 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(overrides={"seed": 3}), "may not set seed"),
    (dict(grid={"out": ["x"]}), "may not set out"),
    (dict(overrides={"epoch": 3}), "unknown key.*epoch"),
    (dict(overrides={"alpha": -1.0}), "alpha must be > 0"),
    (dict(overrides={"schedule": "step", "milestones": [5, 30], "epochs": 30}), "milestones \\[5, 30\\].*epochs=30"),
    (dict(seeds=(0, 0)), "seeds must not repeat"),
    (dict(overrides={"k": 3}, grid={"k": [3, 5]}), "k given both"),
    (dict(grid={"alpha": [0.3333333, 0.33333334]}), "same folder"),
])
def test_bad_sweeps_fail_before_training(tmp_path, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        plan_sweep(SweepConfig(out=str(tmp_path / "s"), **kwargs))
    assert not (tmp_path / "s").exists()


def test_cli_values_and_plan(tmp_path, capsys):
    assert parse_value("1/3") == pytest.approx(1 / 3) and parse_value("[50, 75]") == [50, 75]
    assert parse_value("data/c10") == "data/c10" and parse_value("true") is True
    assert parse_value("1e-3") == 0.001  # plain YAML would read the text "1e-3"
    parser = build_parser()
    args = parser.parse_args(["sweep", "--set", "epochs=30", "--set", "data-root=x", "--vary", "alpha=0.2,1/3",
                              "--vary", "milestones=[5,8],[10]", "--out", "s"])
    config = SweepConfig(**given_values(args, SweepConfig))
    assert config.overrides == {"epochs": 30, "data_root": "x"}
    assert config.grid == {"alpha": [0.2, pytest.approx(1 / 3)], "milestones": [[5, 8], [10]]}
    assert (config.seeds, config.table) == ((0,), True)
    for bad, said in ((["--set", "epochs"], "argument --set: expected KEY=VALUE, got 'epochs'"),
                      (["--set", "k=3", "--set", "k=5"], "argument --set: k given twice")):
        with pytest.raises(SystemExit):
            main(["sweep", *bad, "--out", str(tmp_path / "s")])
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].endswith(said) and err[-1].startswith("kmix sweep: error:")
    assert main(["sweep", "--set", "epochs=2", "--vary", "mix=none,cutmix", "--seeds", "0", "1",
                 "--out", str(tmp_path / "s"), "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].endswith("default+mix=none/seed0  0/2 epochs")
    assert main(["sweep", "--set", "seed=1", "--out", str(tmp_path / "s")]) == 2
    assert "may not set seed" in capsys.readouterr().err


def _err_table(out: Path) -> list[dict]:
    """The table's rows restricted to what must not depend on interruptions (errors, n, seeds, epochs)."""
    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [c for c in rows[0] if "err" in c] + ["mix", "n", "seeds", "epochs"]
    return [{c: r[c] for c in keep} for r in rows]


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    sets = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in TINY.items()]
    args = [*sets, "--vary", "mix=none,dcutmix", "--seeds", "0", "1"]
    config = dict(overrides=dict(TINY), grid={"mix": ["none", "dcutmix"]}, seeds=(0, 1))

    whole = run_sweep(SweepConfig(out=str(tmp_path / "whole"), **config), log=lambda line: None)
    assert [r["status"] for r in whole["runs"]] == ["trained"] * 4 and not whole["failed"]

    killed = tmp_path / "killed"
    first = killed / "default+mix=none" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "kmix", "sweep", *args, "--out", str(killed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (first / "last.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote no checkpoint in 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (first / "summary.json").exists(), "the kill landed after the first run had finished"

    lines = []
    again = run_sweep(SweepConfig(out=str(killed), **config), log=lines.append)
    assert again["runs"][0]["status"] == "resumed" and "resumed in epoch 1" in lines[0]
    assert [r["status"] for r in again["runs"][1:]] == ["trained"] * 3
    assert _err_table(killed) == _err_table(tmp_path / "whole")
    assert len(_err_table(killed)) == 2 and {r["n"] for r in _err_table(killed)} == {"2"}

    # a third call trains nothing; other settings or fewer epochs in the same folders are refused
    lines = []
    third = run_sweep(SweepConfig(out=str(killed), **config), log=lines.append)
    assert [r["status"] for r in third["runs"]] == ["skipped"] * 4 and "skipped" in lines[0]
    with pytest.raises(ValueError, match="holds a run with other settings.*lr: 0.1 -> 0.2"):
        run_sweep(SweepConfig(out=str(killed), **{**config, "overrides": {**TINY, "lr": 0.2}}))
    with pytest.raises(ValueError, match="already trained 2 epochs, more than epochs=1"):
        run_sweep(SweepConfig(out=str(killed), **{**config, "overrides": {**TINY, "epochs": 1}}))


def test_more_epochs_extend_finished_runs(tmp_path):
    one = dict(overrides={**TINY, "epochs": 1}, out=str(tmp_path / "s"))
    assert run_sweep(SweepConfig(**one), log=lambda line: None)["runs"][0]["status"] == "trained"
    longer = run_sweep(SweepConfig(**{**one, "overrides": {**TINY, "epochs": 2}}), log=lambda line: None)
    assert longer["runs"][0]["status"] == "resumed" and longer["runs"][0]["epochs"] == 2
    lines = (tmp_path / "s" / "default" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_a_diverging_run_is_reported_and_the_sweep_goes_on(tmp_path):
    lines = []
    result = run_sweep(SweepConfig(overrides={**TINY, "epochs": 1}, grid={"lr": [1e9, 0.1]}, out=str(tmp_path / "s")),
                       log=lines.append)
    assert [r["status"] for r in result["runs"]] == ["failed", "trained"]
    assert "loss is nan" in result["failed"][0]["error"] and "FAILED" in lines[0]
    assert (tmp_path / "s" / "table.csv").read_text().count("\n") == 2  # header + the run that finished
