"""Per-class subsampling by a score (cv, mean, std, MC-dropout entropy), at random, or by k-center coreset.

Per class c with N_c images, n_c = max(1, floor(T * N_c + 0.5)) images are kept (round half up,
never 0 for a present class). Scores are sorted per class (order "high": descending, "low":
ascending; ties by dataset index ascending); sampling "top" keeps ranks 0..n_c-1, "interval"
keeps the evenly spaced ranks floor((i + 0.5) * N_c / n_c), i = 0..n_c-1.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmix.devices import resolve_device
from kmix.io import write_json_atomic

# method -> what it needs: "scores" (a column of the scores file), "model" (checkpoint + data), "labels"
METHODS: dict[str, str] = {
    "cv": "scores", "mean": "scores", "std": "scores", "random": "labels", "mc-dropout": "model", "k-center": "model",
}
ORDERS = ("high", "low")
SAMPLINGS = ("top", "interval")


@dataclass
class SubsampleConfig:
    """`kmix subsample`: which images to keep per class and where to write the index file."""

    ratio: float
    out: str = "subset.json"
    by: str = "cv"
    order: str = "high"
    sampling: str = "top"
    seed: int = 0
    scores: str | None = None
    checkpoint: str | None = None
    data: str | None = None
    data_root: str | None = None
    mc_passes: int = 10
    mc_p: float = 0.5
    batch_size: int = 256
    device: str = "cpu"
    quiet: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the bad field before any work is done."""
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio!r}")
        if self.by not in METHODS:
            raise ValueError(f"unknown method --by {self.by!r}; choose from {', '.join(METHODS)}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        need = METHODS[self.by]
        if need == "scores" and self.scores is None:
            raise ValueError(f"--by {self.by} needs --scores (a file written by kmix score)")
        if need == "model" and (self.checkpoint is None or self.data is None):
            raise ValueError(f"--by {self.by} needs --checkpoint and --data")
        if need == "labels" and self.scores is None and self.data is None:
            raise ValueError("--by random needs --scores or --data (for the class labels)")


def class_counts(labels: np.ndarray, ratio: float) -> dict[int, int]:
    """{class: n_c} with n_c = max(1, floor(ratio * N_c + 0.5)) for every class present."""
    classes, sizes = np.unique(labels, return_counts=True)
    return {int(c): max(1, math.floor(ratio * int(n) + 0.5)) for c, n in zip(classes, sizes)}


def interval_ranks(n_total: int, n_pick: int) -> np.ndarray:
    """Evenly spaced ranks floor((i + 0.5) * n_total / n_pick), i < n_pick (distinct since n_pick <= n_total)."""
    return np.floor((np.arange(n_pick) + 0.5) * n_total / n_pick).astype(np.int64)


def rank_within_class(members: np.ndarray, scores: np.ndarray, order: str) -> np.ndarray:
    """`members` (dataset indices) sorted by score (descending for "high"), ties by index ascending."""
    key = -scores[members] if order == "high" else scores[members]
    return members[np.lexsort((members, key))]


def select_by_score(labels: np.ndarray, scores: np.ndarray, ratio: float, order: str = "high",
                    sampling: str = "top") -> list[int]:
    """Per class, the top or evenly spaced n_c images of the score ranking; sorted dataset indices."""
    if np.isnan(scores).any():
        raise ValueError(f"scores contain NaN at index {int(np.flatnonzero(np.isnan(scores))[0])}")
    picked: list[int] = []
    for c, n_c in class_counts(labels, ratio).items():
        ranked = rank_within_class(np.flatnonzero(labels == c), scores, order)
        ranks = np.arange(n_c) if sampling == "top" else interval_ranks(len(ranked), n_c)
        picked += ranked[ranks].tolist()
    return sorted(picked)


def select_random(labels: np.ndarray, ratio: float, seed: int) -> list[int]:
    """n_c images per class uniformly at random (one numpy Generator(seed), classes in ascending order)."""
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c, n_c in class_counts(labels, ratio).items():
        picked += rng.permutation(np.flatnonzero(labels == c))[:n_c].tolist()
    return sorted(picked)


def _labels_and_scores(config: SubsampleConfig):
    """Labels (N,), the method's per-image scores (or features for k-center), and the dataset size check."""
    from kmix.select.scores_file import read_scores

    table = read_scores(config.scores) if config.scores is not None else None
    dataset = None
    if config.data is not None:
        from kmix.data.registry import build_dataset

        dataset, _ = build_dataset(config.data, root=config.data_root, train=True)
        data_labels = np.asarray(list(dataset.targets), dtype=np.int64)
        if table is not None:
            if len(table) != len(data_labels):
                raise ValueError(f"dataset size mismatch: scores file {config.scores} has {len(table)} rows but "
                                 f"--data {config.data!r} has {len(data_labels)} training images")
            if not np.array_equal(table.label, data_labels):
                bad = int(np.flatnonzero(table.label != data_labels)[0])
                raise ValueError(f"scores file {config.scores} labels differ from --data {config.data!r} "
                                 f"(first at index {bad}): scored on another dataset?")
    labels = table.label if table is not None else data_labels
    values = None
    if METHODS[config.by] == "scores":
        values = table.column(config.by)
    elif METHODS[config.by] == "model":
        from kmix.select.baselines import mc_dropout_entropy, penultimate_features
        from kmix.train.checkpoint import load_model

        device = resolve_device(config.device)
        model, _ = load_model(config.checkpoint, map_location=device)
        kw = dict(batch_size=config.batch_size, device=device, quiet=config.quiet)
        if config.by == "mc-dropout":
            values = mc_dropout_entropy(model, dataset, passes=config.mc_passes, p=config.mc_p, seed=config.seed,
                                        **kw).numpy().astype(np.float64)
        else:
            values = penultimate_features(model, dataset, **kw)
    return labels, values


def select_indices(config: SubsampleConfig) -> tuple[list[int], np.ndarray]:
    """The chosen dataset indices (sorted) and all labels, for a validated config."""
    from kmix.select.baselines import k_center_per_class

    config.validate()
    labels, values = _labels_and_scores(config)
    if config.by == "random":
        return select_random(labels, config.ratio, config.seed), labels
    if config.by == "k-center":
        return sorted(k_center_per_class(values, labels, class_counts(labels, config.ratio))), labels
    return select_by_score(labels, values, config.ratio, config.order, config.sampling), labels


def run_subsample(config: SubsampleConfig) -> dict:
    """Choose the subset and write `{"indices": [...], how they were chosen, per-class counts}` atomically."""
    indices, labels = select_indices(config)
    ordered = config.by not in ("random", "k-center")
    per_class = {str(c): int(n) for c, n in zip(*np.unique(labels[indices], return_counts=True))}
    record = {
        "indices": indices, "method": config.by, "ratio": config.ratio,
        "order": config.order if ordered else None, "sampling": config.sampling if ordered else None,
        "seed": config.seed, "scores": os.path.abspath(config.scores) if config.scores else None,
        "checkpoint": config.checkpoint, "data": config.data, "n_total": int(len(labels)),
        "n_selected": len(indices), "per_class": per_class,
    }
    write_json_atomic(Path(config.out), record)
    return record
