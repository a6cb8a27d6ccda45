"""`kmix table`: runs grouped by everything but the seed -> mean +- std of final and best errors,
as table.md (ready for a README), table.csv and curves.png. Every figure is read from run folders.

Grouping is deliberately strict: two runs are pooled only when every config field that can change
the result is equal (all fields except the seed and the ones that only say how a run was executed,
OPERATIONAL below) and their summaries report the same evaluation split. A field kmix adds later
therefore splits groups until it is listed as operational: runs are never pooled by accident.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmix.io import write_csv_atomic, write_text_atomic
from kmix.options import option
from kmix.sweep.runfolder import RunFolder, find_runs
from kmix.mix import MIX_NAMES, mixer_label
from kmix.sweep.labels import method_label, plain  # noqa: F401  (method_label: importable from here too)

# config fields that say how a run was executed, not what was trained
OPERATIONAL = frozenset({"seed", "out", "resume", "device", "workers", "threads", "quiet", "plot", "tensorboard",
                         "ckpt_every_steps", "download", "check_images", "channels_last", "loader",
                         "prepare_steps"})
# what was trained and evaluated on (summary.json): part of the group key, so that runs on different data
# given by the same path string (a relative --data, a swapped root) are never pooled
SUMMARY_KEYS = ("eval_split", "eval_images", "train_images", "data_fingerprint")
METHOD_FIELDS = ("data", "model", "epochs", "mix", "k", "alpha", "p")  # always shown, in this order
ERR_METRICS = ("top1_err", "best_top1_err", "top5_err", "best_top5_err")
NUMERIC_COLUMNS = tuple(f"{m}_{s}" for m in ERR_METRICS for s in ("mean", "std")) + (
    "wall_s_mean", "wall_s_total", "img_per_s_mean", "params")


@dataclass
class Group:
    """Finished runs that differ only in the seed (or in operational fields)."""

    key: dict[str, Any]
    runs: list[RunFolder] = field(default_factory=list)


@dataclass
class Table:
    """The aggregated rows, the columns that tell groups apart, and the runs left out (unfinished)."""

    rows: list[dict[str, Any]]
    groups: list[Group]
    shown: list[str]  # group fields shown as columns (METHOD_FIELDS + those that vary across groups)
    shared: dict[str, Any]  # group fields equal in every group (the protocol), not shown as columns
    left_out: list[RunFolder]

    @property
    def columns(self) -> list[str]:
        return [*self.shown, "n", "seeds", *NUMERIC_COLUMNS, "runs"]


def group_key(run: RunFolder) -> dict[str, Any]:
    """Every result-defining config field, plus the summary's evaluation split (when recorded)."""
    key = {k: v for k, v in run.config.items() if k not in OPERATIONAL}
    for k in SUMMARY_KEYS:
        if run.summary is not None and k in run.summary:
            key[k] = run.summary[k]
    return key


def build_table(runs: list[RunFolder]) -> Table:
    """Group the finished runs and aggregate each group; unfinished runs are listed in `left_out`."""
    finished = [r for r in runs if r.finished]
    left_out = [r for r in runs if not r.finished]
    if not finished:
        raise ValueError("no finished runs (summary.json with the configured epochs) among "
                         + ", ".join(str(r.path) for r in runs[:5]) + (" ..." if len(runs) > 5 else ""))
    by_key: dict[str, Group] = {}
    for run in finished:
        key = group_key(run)
        by_key.setdefault(_canon(key), Group(key)).runs.append(run)
    by_key = _pool_unfingerprinted(by_key)
    fields_all = sorted({f for g in by_key.values() for f in g.key})
    varying = [f for f in fields_all if len({_canon(g.key.get(f)) for g in by_key.values()}) > 1]
    # the split is shown when it varies or is not the test set (val / train errors must say so in every row)
    other_split = any(g.key.get("eval_split", "test") != "test" for g in by_key.values())
    varying += ["eval_split"] if other_split and "eval_split" not in varying else []
    shown = list(METHOD_FIELDS) + [f for f in varying if f not in METHOD_FIELDS]
    shared = {f: next(iter(by_key.values())).key.get(f) for f in fields_all if f not in shown}
    groups = sorted(by_key.values(), key=lambda g: _sort_key(g.key, shown))
    rows = [_aggregate(g, shown) for g in groups]
    return Table(rows, groups, shown, shared, left_out)


def _pool_unfingerprinted(by_key: dict[str, Group]) -> dict[str, Group]:
    """Runs recorded before summaries carried `data_fingerprint` (older kmix) join the one group that matches
    them in every other key (the data_root and subset spelling, train and eval images included): as strict as
    the table was before fingerprints. With no such group, or two with different fingerprints, they stay apart."""
    def without(key: dict[str, Any]) -> str:
        return _canon({k: v for k, v in key.items() if k != "data_fingerprint"})

    known: dict[str, list[str]] = {}
    for canon, group in by_key.items():
        if "data_fingerprint" in group.key:
            known.setdefault(without(group.key), []).append(canon)
    merged = dict(by_key)
    for canon, group in by_key.items():
        targets = known.get(without(group.key), [])
        if "data_fingerprint" not in group.key and len(targets) == 1:
            merged[targets[0]].runs.extend(group.runs)
            del merged[canon]
    return merged


def _aggregate(group: Group, shown: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {f: group.key.get(f) for f in shown}
    runs = sorted(group.runs, key=lambda r: (r.config.get("seed", 0), str(r.path)))
    row["n"] = len(runs)
    row["seeds"] = ";".join(str(r.config.get("seed")) for r in runs)
    for metric in ERR_METRICS:
        mean, std = _mean_std([_metric(r, metric) for r in runs])
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
    walls = [r.summary.get("wall_s") for r in runs]
    row["wall_s_mean"], _ = _mean_std(walls)
    row["wall_s_total"] = float(sum(walls)) if None not in walls else None
    row["img_per_s_mean"], _ = _mean_std([r.summary.get("img_per_s") for r in runs])
    params = {r.summary.get("params") for r in runs}
    row["params"] = params.pop() if len(params) == 1 else None
    row["runs"] = ";".join(str(r.path) for r in runs)
    return row


def _metric(run: RunFolder, name: str) -> float | None:
    """Final errors from summary.json; best = the lowest over the evaluated epochs of metrics.jsonl.
    (A run evaluated on its training images has them under train_* keys: its eval_split says so.)"""
    p = run.prefix
    if not name.startswith("best_"):
        return run.summary.get(p + name)
    base = p + name[5:]
    if name == "best_top1_err" and run.summary.get(f"best_{base}") is not None:
        return run.summary[f"best_{base}"]
    values = [rec[base] for rec in run.history if rec.get(base) is not None]
    return min(values) if values else None


def _mean_std(values: list[Any]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1; None for one value); None when any value is missing."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sort_key(key: dict[str, Any], shown: list[str]) -> tuple:
    """data, model, epochs, then the mixers in kmix's order (vanilla first), then the other shown fields."""
    mix = key.get("mix")
    order = MIX_NAMES.index(mix) if mix in MIX_NAMES else len(MIX_NAMES)
    rest = [key.get(f) for f in shown if f not in ("data", "model", "epochs", "mix")]
    return (str(key.get("data")), str(key.get("model")), key.get("epochs") or 0, order,
            *[(0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, _canon(v))
              for v in rest])


# --- writing -------------------------------------------------------------------------------------
@dataclass
class TableConfig:
    """`kmix table`: the run folders to pool, where the table goes, whether to plot."""

    runs: list[str] = option(help="run folders or folders holding them (a sweep's OUT)", positional=True,
                             metavar="RUN_DIR")
    out: str | None = option(None, "where to write table.md, table.csv and curves.png",
                             default_text="the RUN_DIR, when exactly one is given")
    plot: bool = option(True, "write curves.png: each group's top-1 error per epoch, mean +- std over seeds")

    def __post_init__(self) -> None:
        if isinstance(self.runs, (str, os.PathLike)) or not self.runs:
            raise ValueError(f"runs must be a non-empty list of folders, got {self.runs!r}")
        if self.out is None and len(self.runs) != 1:
            raise ValueError(f"--out is needed with {len(self.runs)} RUN_DIRs (where should table.md go?)")

    @property
    def folder(self) -> Path:
        """Where the table is written: out, else the one run folder."""
        return Path(self.out or self.runs[0])


def write_table(paths: list[str | os.PathLike], out: str | os.PathLike, *, plot: bool = True) -> Table:
    """Read the run folders (or folders holding them), write OUT/table.md, table.csv and curves.png."""
    table = build_table(find_runs(paths))
    write_table_files(table, out, plot=plot)
    return table


def write_table_files(table: Table, out: str | os.PathLike, *, plot: bool = True) -> None:
    """OUT/table.md, table.csv and (with `plot`) curves.png of a built table, each written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "table.md", to_markdown(table))
    write_csv_atomic(out / "table.csv", table.columns,
                     [[_csv(row.get(c)) for c in table.columns] for row in table.rows])
    if plot:
        from kmix.sweep.curves import plot_group_curves

        plot_group_curves(table, out / "curves.png")


def to_markdown(table: Table) -> str:
    """The table (errors in %, mean +- std over seeds) and notes on what was measured and left out."""
    heads = [("K" if f == "k" else f) for f in table.shown] + [
        "n", "top1_err (%)", "best_top1_err (%)", "top5_err (%)", "best_top5_err (%)", "wall / run", "img/s"]
    align = ["---"] * len(table.shown) + ["---:"] * (len(heads) - len(table.shown))  # numbers right-aligned
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        rate = row["img_per_s_mean"]
        cells = [_show_field(f, row) for f in table.shown] + [str(row["n"])]
        cells += [_pm(row[f"{m}_mean"], row[f"{m}_std"]) for m in ERR_METRICS]
        cells += [_duration(row["wall_s_mean"]), "—" if rate is None else f"{rate:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    n_runs = sum(r["n"] for r in table.rows)
    total = sum(r["wall_s_total"] or 0.0 for r in table.rows)
    splits = sorted({str(g.key.get("eval_split", "test")) for g in table.groups})
    notes = [
        "",
        f"Mean ± sample std over the n seeds of each row, from {n_runs} run folder(s) read by `kmix table`. "
        f"Errors are on the {'/'.join(splits)} split; `best_*` is the lowest error over the evaluated epochs, "
        "picked on that same split (optimistic; report the final columns). "
        f"Training wall time, all runs: {_duration(total)}.",
    ]
    if table.shared:
        shared = {k: v for k, v in table.shared.items() if v not in (None, [], {})}
        notes += ["", "Shared by every row: " + ", ".join(f"{k}={plain(v)}" for k, v in shared.items()) + "."]
    if table.left_out:
        notes += ["", f"Left out, unfinished ({len(table.left_out)}): " + ", ".join(
            f"{r.path} ({r.epochs_done}/{r.config.get('epochs')} epochs)" for r in table.left_out) + "."]
    return "\n".join(lines + notes) + "\n"


def _show_field(name: str, row: dict[str, Any]) -> str:
    if name == "mix":  # the paper's K=2 cases say so ('dcutmix K=2 (box inside)'): not the field's cutmix
        return mixer_label(row.get("mix"), row.get("k"))
    if name in ("k", "alpha", "p") and row.get("mix") == "none":
        return "—"
    return plain(row.get(name))


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _csv(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else value
