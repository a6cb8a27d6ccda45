"""`run_sweep`: train the planned runs one after another with `kmix.train.fit`; a finished run is
skipped, an interrupted one resumed (exactly, from its last.pt), so a killed sweep continues where it
stopped. One progress line per run with the estimated time left; the table at the end. `train_runs`
is that loop for any list of planned runs (`kmix prune-curve` trains its runs with it)."""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any, Callable

from kmix.io import write_json_atomic
from kmix.runs import check_resume, lock_run_folder
from kmix.sweep.plan import PlannedRun, SweepConfig, plan_sweep
from kmix.sweep.runfolder import RunFolder, read_run
from kmix.train.config import RUN_DEFINING, default_values


def run_sweep(config: SweepConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the sweep; return {"out", "runs": [per-run status and errors], "failed", "wall_s", "table"}.

    A run that diverges (FloatingPointError) is reported and the sweep goes on; any other error stops
    it with the run named (rerunning the same command continues after the fix)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("kmix sweep runs in one process; use torchrun with kmix train for several GPUs")
    with lock_run_folder(config.out, "kmix sweep"):
        return _sweep(config, log)


def _sweep(config: SweepConfig, log: Callable[[str], None]) -> dict[str, Any]:
    plan = plan_sweep(config)
    folders = {run.out: existing_run(run) for run in plan}  # every folder checked before the first run trains
    write_json_atomic(Path(config.out) / "sweep.json", {
        "recipes": list(config.recipes), "overrides": config.overrides, "grid": config.grid,
        "seeds": list(config.seeds), "runs": [{"label": r.label, "seed": r.seed, "out": str(r.out)} for r in plan]})
    t_sweep = time.perf_counter()
    results, failed = train_runs(plan, log=log, folders=folders)
    table = None
    done = [run.out for run, res in zip(plan, results) if res["status"] != "failed"]
    if config.table and done:
        from kmix.sweep.table import write_table

        write_table(done, config.out)
        table = str(Path(config.out) / "table.md")
        log(f"table: {table}, {Path(config.out) / 'table.csv'}, {Path(config.out) / 'curves.png'}")
    return {"out": config.out, "runs": results, "failed": failed, "wall_s": time.perf_counter() - t_sweep,
            "table": table}


def train_runs(plan: list[PlannedRun], *, log: Callable[[str], None] = print,
               folders: dict[Path, RunFolder | None] | None = None) -> tuple[list[dict], list[dict]]:
    """Train the planned runs in order with `kmix.train.fit`: a finished run is skipped, an interrupted one
    resumed from its last.pt; one progress line each. Returns (per-run results, failed runs).

    `folders`: each run's folder as `existing_run` read it (read here when not given). A run that diverges
    (FloatingPointError) is reported and the rest go on; any other error stops them with the run named."""
    if folders is None:
        folders = {run.out: existing_run(run) for run in plan}
    rates = [f.summary["wall_s"] / f.summary["epochs"] for f in folders.values()
             if f is not None and f.finished and f.summary.get("wall_s") and f.summary.get("epochs")]
    left = {r.out: r.config.epochs - (folders[r.out].epochs_done if folders[r.out] else 0) for r in plan}
    results, failed = [], []
    for i, run in enumerate(plan, 1):
        head = f"[{i}/{len(plan)}] {run.label} seed {run.seed}"
        folder = folders[run.out]
        if folder is not None and folder.finished and folder.summary["epochs"] == run.config.epochs:
            results.append(_result(run, "skipped", folder.summary))
            left[run.out] = 0
            log(f"{head}: finished earlier, skipped ({_errors(folder.summary)}); {_eta(rates, left)}")
            continue
        before = folder.epochs_done if folder is not None else 0
        resumed = (run.out / "last.pt").is_file()  # fit continues from it, mid-epoch included
        t0 = time.perf_counter()
        try:
            summary = _fit(run)
        except FloatingPointError as err:
            left[run.out] = 0
            failed.append({"label": run.label, "seed": run.seed, "out": str(run.out), "error": str(err)})
            results.append(_result(run, "failed", None))
            log(f"{head}: FAILED ({err}); {_eta(rates, left)}")
            continue
        wall = time.perf_counter() - t0
        trained = run.config.epochs - before
        rates.append(wall / max(trained, 1))
        left[run.out] = 0
        what = f"resumed in epoch {before + 1}, " if resumed else ""
        results.append(_result(run, "resumed" if resumed else "trained", summary))
        log(f"{head}: {what}{trained} epoch(s) in {_clock(wall)} ({_errors(summary)}); {_eta(rates, left)}")
    return results, failed


def sweep_status(config: SweepConfig) -> list[dict[str, Any]]:
    """The plan without training: per run its label, seed, folder and epochs done / planned."""
    out = []
    for run in plan_sweep(config):
        folder = existing_run(run)
        done = folder.epochs_done if folder is not None else 0
        out.append({"label": run.label, "seed": run.seed, "out": str(run.out), "epochs_done": done,
                    "epochs": run.config.epochs})
    return out


def existing_run(run: PlannedRun) -> RunFolder | None:
    """The run's folder as on disk, after checking it holds this run (same settings, not more epochs)."""
    if not (run.out / "config.yaml").is_file():
        return None
    folder = read_run(run.out)
    planned = run.config.to_dict()
    check_resume(folder.config, planned, RUN_DEFINING, source=run.out, defaults=default_values(),
                 hint="choose another --out or restore the settings")
    done = max(folder.epochs_done, (folder.summary or {}).get("epochs") or 0)
    if done > run.config.epochs:
        raise ValueError(f"{run.out} has already trained {done} epochs, more than epochs={run.config.epochs}")
    return folder


def _fit(run: PlannedRun) -> dict[str, Any]:
    from kmix.train import fit

    try:
        return fit(run.config)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise type(err)(f"run {run.label} seed {run.seed} ({run.out}): {err}") from err
    finally:
        gc.collect()  # free the run's data and model before the next one
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _result(run: PlannedRun, status: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("top1_err", "best_top1_err", "top5_err", "epochs", "wall_s")
    return {"label": run.label, "seed": run.seed, "out": str(run.out), "status": status,
            **{k: (summary or {}).get(k) for k in keys}}


def _errors(summary: dict[str, Any]) -> str:
    p = "train_" if summary.get("eval_split") == "train" else ""
    split = summary.get("eval_split", "test")
    final, best = summary.get(f"{p}top1_err"), summary.get(f"best_{p}top1_err")
    return (f"{split} top1 err {final:.2f}%" if final is not None else "no top1 err") + (
        f", best {best:.2f}%" if best is not None else "")


def _eta(rates: list[float], left: dict[Path, int]) -> str:
    """Runs and time left: remaining epochs x the mean seconds per epoch measured so far."""
    runs = sum(1 for v in left.values() if v > 0)
    if not runs:
        return "nothing left to train"
    if not rates:
        return f"{runs} run(s) left"
    return f"{runs} run(s) left, about {_clock(sum(rates) / len(rates) * sum(left.values()))}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"
