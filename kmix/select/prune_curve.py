"""The pruning curve (paper Fig. 5a): test error of models trained from scratch on per-class subsets
chosen by each method, against the kept fraction T, mean +- std over seeds, plus the full-data point.

Every step is resumable: finished training runs are recorded in `runs.csv` and skipped; a run
interrupted mid-training continues from its last.pt; scoring continues from its chunks.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kmix.io import atomic_write, write_csv_atomic, write_json_atomic
from kmix.select.score import ScoreConfig, ScoreSpec, run_score
from kmix.select.subsample import METHODS, ORDERS, SAMPLINGS, SubsampleConfig, run_subsample

RUN_COLUMNS = ("method", "ratio", "seed", "n_train", "epochs", "top1_err", "best_top1_err", "wall_s", "subset")
CURVE_COLUMNS = ("method", "ratio", "n_train", "n_seeds", "err_mean", "err_std", "err_min", "err_max")


def parse_method(spec: str) -> tuple[str, str, str]:
    """'cv' | 'mean:low' | 'cv:high:interval' -> (by, order, sampling); defaults high, top."""
    parts = spec.split(":")
    by = parts[0]
    order = parts[1] if len(parts) > 1 else "high"
    sampling = parts[2] if len(parts) > 2 else "top"
    if by not in METHODS or order not in ORDERS or sampling not in SAMPLINGS or len(parts) > 3:
        raise ValueError(f"bad method {spec!r}: use BY[:ORDER[:SAMPLING]] with BY in {', '.join(METHODS)}, "
                         f"ORDER in {', '.join(ORDERS)}, SAMPLING in {', '.join(SAMPLINGS)}")
    return by, order, sampling


@dataclass
class PruneCurveConfig:
    """`kmix prune-curve`: subsets by each method at each ratio, one fresh training run per seed."""

    data: str = "digits"
    data_root: str | None = None
    checkpoint: str | None = None  # scoring model; None: the full-data run of the first seed
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5)
    methods: tuple[str, ...] = ("cv", "random")
    seeds: tuple[int, ...] = (0, 1)
    full: bool = True  # also train on all data (the T = 1 point)
    epochs: int = 15
    equal_steps: bool = False  # subset runs get epochs * N / n_train epochs: as many steps as a full run
    model: str = "small_cnn"
    model_kwargs: dict = field(default_factory=dict)
    mix: str = "dcutmix"
    k: int = 3
    alpha: float = 1.0
    batch_size: int = 64
    lr: float = 0.1
    score: ScoreSpec = field(default_factory=ScoreSpec)
    out: str = "prune_curve"
    device: str = "cpu"
    quiet: bool = True

    def validate(self) -> None:
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios):
            raise ValueError(f"ratios must be in (0, 1], got {list(self.ratios)}")
        if not self.methods:
            raise ValueError("methods is empty")
        for m in self.methods:
            parse_method(m)
            if METHODS[parse_method(m)[0]] == "model" and self.data is None:
                raise ValueError(f"method {m} needs --data")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list without repeats, got {list(self.seeds)}")
        if self.checkpoint is None and not self.full:
            raise ValueError("without --checkpoint the scoring model is the full-data run: do not disable it")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {self.checkpoint}")


# settings that change what a finished run means: a rerun into the same --out must keep them
RUN_DEFINING = ("data", "checkpoint", "epochs", "equal_steps", "model", "model_kwargs", "mix", "k", "alpha",
                "batch_size", "lr", "score")


def _train(config: PruneCurveConfig, run_dir: Path, seed: int, subset: str | None, epochs: int) -> dict:
    from kmix.train import TrainConfig, fit

    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    return fit(TrainConfig(data=config.data, data_root=config.data_root, subset=subset, model=config.model,
                           model_kwargs=dict(config.model_kwargs), mix=config.mix, k=config.k, alpha=config.alpha,
                           epochs=epochs, batch_size=config.batch_size, lr=config.lr, seed=seed,
                           out=str(run_dir), resume=True, device=config.device, tensorboard=False, quiet=True))


def subset_epochs(epochs: int, n_total: int, n_train: int, equal_steps: bool) -> int:
    """Epochs for a subset run: `epochs`, or with equal_steps max(epochs, round(epochs * n_total / n_train))."""
    return max(epochs, round(epochs * n_total / n_train)) if equal_steps else epochs


def _check_same_settings(path: Path, settings: dict) -> None:
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in RUN_DEFINING if old.get(k) != settings.get(k)]
        if diff:
            raise ValueError(f"{path.parent} holds a curve made with other settings ({'; '.join(diff)}); "
                             "choose another --out")


def _read_runs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _key(method: str, ratio: float, seed: int) -> tuple[str, str, str]:
    return method, f"{float(ratio):g}", str(int(seed))


def aggregate(rows: list[dict]) -> list[dict]:
    """Per (method, ratio): mean, sample std (ddof=1; 0 for one seed), min and max of top-1 error over seeds."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], float(r["ratio"])), []).append(r)
    out = []
    for (method, ratio), rs in sorted(groups.items()):
        errs = np.array([float(r["top1_err"]) for r in rs])
        out.append({"method": method, "ratio": ratio, "n_train": int(rs[0]["n_train"]), "n_seeds": len(rs),
                    "err_mean": float(errs.mean()), "err_std": float(errs.std(ddof=1)) if len(errs) > 1 else 0.0,
                    "err_min": float(errs.min()), "err_max": float(errs.max())})
    return out


def plot_curve(curve: list[dict], path: Path, title: str) -> None:
    """Error vs T per method (mean +- std band), the full-data point as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({c["method"] for c in curve} - {"full"}):
        pts = sorted((c for c in curve if c["method"] == method), key=lambda c: c["ratio"])
        x = np.array([c["ratio"] for c in pts])
        y = np.array([c["err_mean"] for c in pts])
        s = np.array([c["err_std"] for c in pts])
        ax.errorbar(x, y, yerr=s, marker="o", capsize=3, label=method)
    full = [c for c in curve if c["method"] == "full"]
    if full:
        ax.axhline(full[0]["err_mean"], color="k", ls="--", lw=1, label=f"full data ({full[0]['err_mean']:.2f}%)")
    ax.set_xlabel("kept fraction T per class")
    ax.set_ylabel("test top-1 error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def run_prune_curve(config: PruneCurveConfig) -> dict:
    """Train full-data and subset runs (skipping finished ones), write runs.csv, curve.csv and curve.png."""
    from tqdm import tqdm

    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps({**asdict(config), "score": asdict(config.score)}))  # JSON-normalised
    _check_same_settings(out / "config.json", settings)
    write_json_atomic(out / "config.json", settings)
    runs_path = out / "runs.csv"
    rows = _read_runs(runs_path)
    done = {_key(r["method"], float(r["ratio"]), int(r["seed"])) for r in rows}
    t0 = time.perf_counter()

    def record(method, ratio, seed, n_train, epochs, summary, subset, wall):
        rows.append({"method": method, "ratio": f"{float(ratio):g}", "seed": seed, "n_train": n_train, "epochs": epochs,
                     "top1_err": summary["top1_err"], "best_top1_err": summary.get("best_top1_err"),
                     "wall_s": round(wall, 2), "subset": subset or ""})
        write_csv_atomic(runs_path, RUN_COLUMNS, [[r.get(c, "") for c in RUN_COLUMNS] for r in rows])

    jobs = []  # seed-major: a complete one-seed curve exists before the second seed starts
    for s in config.seeds:
        jobs += [("full", 1.0, s)] if config.full else []
        jobs += [(m, r, s) for m in config.methods for r in config.ratios]
    bar = tqdm(total=len(jobs), disable=config.quiet, desc="prune-curve", unit="run")
    checkpoint = config.checkpoint
    scores_path = out / "scores.csv"
    for method, ratio, seed in jobs:
        if method != "full" and checkpoint is None:
            checkpoint = str(out / "runs" / "full" / f"seed{config.seeds[0]}" / "last.pt")
        if method != "full" and METHODS[parse_method(method)[0]] == "scores" and not scores_path.is_file():
            run_score(ScoreConfig(checkpoint=checkpoint, data=config.data, data_root=config.data_root,
                                  out=str(scores_path), spec=config.score, device=config.device, quiet=config.quiet,
                                  rank=0, world_size=1))
        if _key(method, ratio, seed) in done:
            bar.update()
            continue
        started = time.perf_counter()
        if method == "full":
            run_dir = out / "runs" / "full" / f"seed{seed}"
            subset, n_train, epochs = None, None, config.epochs
            summary = _train(config, run_dir, seed, None, epochs)
        else:
            by, order, sampling = parse_method(method)
            tag = f"{method.replace(':', '-')}_T{float(ratio):g}_s{seed}"
            subset = str(out / "subsets" / f"{tag}.json")
            chosen = run_subsample(SubsampleConfig(
                ratio=float(ratio), out=subset, by=by, order=order, sampling=sampling, seed=seed,
                scores=str(scores_path) if METHODS[by] == "scores" else None,
                checkpoint=checkpoint if METHODS[by] == "model" else None,
                data=config.data, data_root=config.data_root, device=config.device, quiet=True))
            n_train = chosen["n_selected"]
            epochs = subset_epochs(config.epochs, chosen["n_total"], n_train, config.equal_steps)
            summary = _train(config, out / "runs" / tag, seed, subset, epochs)
        if n_train is None:
            from kmix.data.registry import build_dataset

            n_train = len(build_dataset(config.data, root=config.data_root, train=True)[0])
        record(method, ratio, seed, n_train, epochs, summary, subset, time.perf_counter() - started)
        done.add(_key(method, ratio, seed))
        bar.update()
    bar.close()
    curve = aggregate([r for r in rows if r["method"] == "full" or
                       (r["method"] in config.methods and float(r["ratio"]) in {float(x) for x in config.ratios})])
    write_csv_atomic(out / "curve.csv", CURVE_COLUMNS,
                     [[c[k] if not isinstance(c[k], float) else round(c[k], 4) for k in CURVE_COLUMNS] for c in curve])
    budget = f"{config.epochs} epochs" + (" x N/n (equal steps)" if config.equal_steps else "")
    plot_curve(curve, out / "curve.png", f"{config.data} / {config.model}, {budget}, {len(config.seeds)} seed(s)")
    return {"out": str(out), "curve": curve, "runs": len(rows), "wall_s": round(time.perf_counter() - t0, 1)}
