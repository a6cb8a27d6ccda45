"""Per-class subsampling by any score column, at random, or by k-center coreset.

Per class c with N_c images, n_c = max(1, floor(T * N_c + 0.5)) images are kept (round half up,
never 0 for a present class). A score column comes from a scores file (`kmix score`, any method:
cv/mean/std of kmix-cv, el2n, grand, entropy, margin, or any other numeric column) or is the
MC-dropout entropy. Scores are ranked per class ("high": descending, "low": ascending; ties by
dataset index ascending; by default the column's own first end, see `ScoreTable.default_order`),
then a sampling rule keeps n_c of them:

- "top": ranks 0..n_c-1; "bottom": the last n_c ranks;
- "interval": the evenly spaced ranks floor((i + 0.5) * N_c / n_c), i = 0..n_c-1;
- "ccs": coverage-centric stratified sampling (Zheng et al., ICLR 2023), see `select_ccs`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmix.devices import resolve_device
from kmix.io import write_json_atomic
from kmix.options import data_option, data_root_option, device_option, option, quiet_option
from kmix.runs import Stream, seed_for

# subsampling methods that need no scores file -> what they need ("labels" or "model": checkpoint + data)
BASELINES: dict[str, str] = {"random": "labels", "mc-dropout": "model", "k-center": "model"}
# the named methods older callers (prune-curve) choose from: kmix-cv's columns and the baselines.
# `--by` also takes any other score column of a scores file (el2n, grand, entropy, margin, loss_3, ...).
METHODS: dict[str, str] = {"cv": "scores", "mean": "scores", "std": "scores", **BASELINES}
ORDERS = ("high", "low")
SAMPLINGS = ("top", "bottom", "interval", "ccs")
CCS_BINS = 50  # strata: `stratas = 50` in Zheng et al.'s CCS code (CoresetSelection.stratified_sampling)
# beta at T <= 0.1: the CCS authors' own CIFAR-10 command at 90% pruning (`--coreset-ratio 0.1 --mis-ratio 0.3`)
CCS_BETA_AT_T10 = 0.3
CCS_BETA_ZERO_FROM = 0.5  # from this kept fraction on, the default hard cut is 0


def method_needs(by: str) -> str:
    """What `--by by` needs: "labels", "model" (checkpoint + data) or "scores" (a scores file column)."""
    return BASELINES.get(by, "scores")


def ccs_default_beta(ratio: float) -> float:
    """The default CCS hard-cut fraction for kept fraction `ratio`: 0.3 at ratio <= 0.1, 0 at ratio >= 0.5,
    linear in between (0.15 at 0.3).

    Why: the cut removes the hardest images (often mislabeled or ambiguous), which hurt most when the
    budget is small; Zheng et al. tune beta per pruning rate and their published CIFAR-10 command
    for 10% kept uses 0.3. The ramp down to 0 at half the data is our choice, not a value from the
    paper (hard images are then affordable, and hard-first selection is already competitive at
    low pruning rates in their results). Set `ccs_beta` / `--ccs-beta` to choose it yourself.
    """
    span = CCS_BETA_ZERO_FROM - 0.1
    return round(CCS_BETA_AT_T10 * min(1.0, max(0.0, (CCS_BETA_ZERO_FROM - ratio) / span)), 6)


@dataclass
class SubsampleConfig:
    """`kmix subsample`: which images to keep per class and where to write the index file.

    by: a baseline (random, mc-dropout, k-center) or a score column of `scores`; order: None = the
    column's default end (the file's `orders`, "high" for all built-in columns but margin);
    sampling: top, bottom, interval or ccs; ccs_beta: CCS hard-cut fraction (None: `ccs_default_beta`);
    ccs_bins: CCS strata per class; seed: random, mc-dropout and ccs draws.
    """

    ratio: float = option(help="fraction T in (0, 1] kept per class")
    out: str = option("subset.json", "index file to write")
    by: str = option("cv", "a score column of --scores (kmix-cv: cv, mean, std; el2n; grand; entropy; margin; "
                           "forgetting; aum; dyn-unc; any other numeric column) or a method without scores: "
                           + ", ".join(BASELINES))
    order: str | None = option(None, "high: largest scores first, low: smallest first", choices=ORDERS,
                               default_text="the column's own hard/important end from the scores file: high for every "
                                            "built-in column but margin, and for mc-dropout")
    sampling: str = option("top", "top: first n_c ranks; bottom: last n_c ranks; interval: evenly spaced ranks; "
                                  "ccs: drop the first (hardest) beta fraction, cut the rest's score range into "
                                  "equal-width strata and fill n_c stratum by stratum, emptiest first, at random "
                                  "inside each (Zheng et al., ICLR 2023)", choices=SAMPLINGS)
    seed: int = option(0, "seed for random, mc-dropout and ccs")
    scores: str | None = option(None, "scores file from kmix score (needed to rank by one of its columns)")
    checkpoint: str | None = option(None, "model for mc-dropout / k-center")
    data: str | None = data_option(None, help="dataset (needed for mc-dropout / k-center; checked against --scores "
                                             "when both are given)")
    data_root: str | None = data_root_option()
    mc_passes: int = option(10, "stochastic passes for mc-dropout")
    mc_p: float = option(0.5, "dropout rate added before the classifier when the model has no dropout")
    ccs_beta: float | None = option(None, "ccs: fraction of each class cut from the hard end, in [0, 1)",
                                    default_text="0.3 at T <= 0.1, the CCS authors' CIFAR-10 command for 10% kept; "
                                                 "0 at T >= 0.5; linear in between, our choice")
    ccs_bins: int = option(CCS_BINS, "ccs: strata per class, as in the CCS code")
    batch_size: int = option(256, "images per forward pass")
    device: str = device_option("cpu", cli_default="auto")
    quiet: bool = quiet_option(True)

    def validate(self) -> None:
        """Raise ValueError naming the bad field before any work is done."""
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio!r}")
        if not isinstance(self.by, str) or not self.by:
            raise ValueError(f"--by must name a method or a score column, got {self.by!r}")
        if self.order is not None and self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.ccs_beta is not None and (isinstance(self.ccs_beta, bool) or not 0 <= self.ccs_beta < 1):
            raise ValueError(f"ccs_beta (--ccs-beta) must be in [0, 1), got {self.ccs_beta!r}")
        if isinstance(self.ccs_bins, bool) or not isinstance(self.ccs_bins, int) or self.ccs_bins < 1:
            raise ValueError(f"ccs_bins (--ccs-bins) must be an int >= 1, got {self.ccs_bins!r}")
        need = method_needs(self.by)
        if need == "scores" and self.scores is None:
            raise ValueError(f"--by {self.by} needs --scores (a file written by kmix score; --by names one of its "
                             f"columns) unless it is one of {', '.join(BASELINES)}")
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


def _check_finite(scores: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        kind = "NaN" if np.isnan(scores[bad[0]]) else "an infinite value"
        hint = (" (a training-dynamics score of an image the recorded run never saw, or saw too rarely: record a run "
                "on the whole training set, or a longer one)" if kind == "NaN" else "")
        raise ValueError(f"scores contain {kind} at index {int(bad[0])}{hint}")


def select_by_score(labels: np.ndarray, scores: np.ndarray, ratio: float, order: str = "high",
                    sampling: str = "top", *, seed: int = 0, ccs_beta: float | None = None,
                    ccs_bins: int = CCS_BINS) -> list[int]:
    """Per class, n_c images of the score ranking by `sampling` (top, bottom, interval, ccs); sorted indices.

    `seed`, `ccs_beta` and `ccs_bins` are used by ccs only (see `select_ccs`).
    """
    if sampling == "ccs":
        return select_ccs(labels, scores, ratio, order, beta=ccs_beta, bins=ccs_bins, seed=seed)
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    _check_finite(scores)
    picked: list[int] = []
    for c, n_c in class_counts(labels, ratio).items():
        ranked = rank_within_class(np.flatnonzero(labels == c), scores, order)
        if sampling == "top":
            ranks = np.arange(n_c)
        elif sampling == "bottom":
            ranks = np.arange(len(ranked) - n_c, len(ranked))
        else:
            ranks = interval_ranks(len(ranked), n_c)
        picked += ranked[ranks].tolist()
    return sorted(picked)


def ccs_budgets(bin_sizes: np.ndarray, budget: int) -> np.ndarray:
    """How many images each stratum gives: visit the strata from emptiest to fullest (ties: lower stratum
    first); each takes min(its size, floor(remaining budget / strata not yet visited)).

    A stratum smaller than its fair share gives all it has and the rest is shared by the fuller ones,
    so the budget is met exactly whenever it is <= sum(bin_sizes) (the per-stratum shares of the
    not-full strata differ by at most 1). This is the allocation of Zheng et al.'s `bin_allocate`.
    """
    bin_sizes = np.asarray(bin_sizes, dtype=np.int64)
    if not 0 <= budget <= int(bin_sizes.sum()):
        raise ValueError(f"CCS budget {budget} exceeds the {int(bin_sizes.sum())} images in the strata")
    take = np.zeros_like(bin_sizes)
    rest = int(budget)
    visit = np.argsort(bin_sizes, kind="stable")
    for k, b in enumerate(visit):  # at most `bins` steps: the sequential share is the rule itself
        take[b] = min(int(bin_sizes[b]), rest // (len(visit) - k))
        rest -= int(take[b])
    return take


def ccs_strata(scores: np.ndarray, bins: int) -> np.ndarray:
    """Stratum of each score: `bins` equal-width intervals over [min, max], the last one closed (so the
    maximum falls in the last stratum); all in stratum 0 when every score is equal."""
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return np.zeros(len(scores), dtype=np.int64)
    return np.minimum(np.floor((scores - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)


def select_ccs(labels: np.ndarray, scores: np.ndarray, ratio: float, order: str = "high", *,
               beta: float | None = None, bins: int = CCS_BINS, seed: int = 0) -> list[int]:
    """Coverage-centric coreset selection (Zheng et al., ICLR 2023), run inside each class.

    Per class c (ascending, one numpy Generator seeded from `seed` for all):
    1. rank by score (`order` puts the hardest first) and drop the first floor(beta * N_c) images,
       but never so many that fewer than n_c remain (so the per-class count is always exact);
    2. cut the remaining images' score range into `bins` equal-width strata (`ccs_strata`);
    3. split n_c over the strata emptiest first (`ccs_budgets`) and draw each stratum's share
       uniformly at random without replacement.
    beta None takes `ccs_default_beta(ratio)`; `bins` defaults to the CCS code's 50. Unlike the
    CCS code (one global pass, hard cut by AUM), both steps here run per class on the chosen score.
    Returns sorted dataset indices.
    """
    _check_finite(scores)
    beta = ccs_default_beta(ratio) if beta is None else float(beta)
    if not 0 <= beta < 1:
        raise ValueError(f"ccs beta must be in [0, 1), got {beta!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"ccs bins must be an int >= 1, got {bins!r}")
    rng = np.random.default_rng(seed_for(Stream.SUBSAMPLE_CCS, seed))
    picked: list[np.ndarray] = []
    for c, n_c in class_counts(labels, ratio).items():
        ranked = rank_within_class(np.flatnonzero(labels == c), scores, order)
        n_drop = min(math.floor(beta * len(ranked)), len(ranked) - n_c)
        pool = ranked[n_drop:]
        stratum = ccs_strata(scores[pool], bins)
        take = ccs_budgets(np.bincount(stratum, minlength=bins), n_c)
        perm = np.lexsort((rng.random(len(pool)), stratum))  # by stratum, random order inside each
        sorted_strata = stratum[perm]
        rank_in_stratum = np.arange(len(pool)) - np.searchsorted(sorted_strata, sorted_strata, side="left")
        picked.append(pool[perm[rank_in_stratum < take[sorted_strata]]])
    return sorted(np.concatenate(picked).tolist()) if picked else []


def select_random(labels: np.ndarray, ratio: float, seed: int) -> list[int]:
    """n_c images per class uniformly at random (one numpy Generator seeded from `seed`, classes in ascending order)."""
    rng = np.random.default_rng(seed_for(Stream.SUBSAMPLE_RANDOM, seed))
    picked: list[int] = []
    for c, n_c in class_counts(labels, ratio).items():
        picked += rng.permutation(np.flatnonzero(labels == c))[:n_c].tolist()
    return sorted(picked)


def _labels_and_scores(config: SubsampleConfig):
    """Labels (N,), the method's per-image scores (or features for k-center), the column's default order,
    and the dataset size check."""
    from kmix.select.scores_file import read_scores

    table = read_scores(config.scores) if config.scores is not None else None
    dataset = None
    need = method_needs(config.by)
    model = None
    if config.data is not None:
        from kmix.data.registry import build_dataset

        if need == "model":  # the data as the checkpoint's model sees it (size), refused when it doesn't fit
            from kmix.data.for_model import train_data_for_model
            from kmix.train.checkpoint import load_model

            model, meta = load_model(config.checkpoint, map_location=resolve_device(config.device))
            dataset, _ = train_data_for_model(config.data, meta, root=config.data_root, checkpoint=config.checkpoint)
        else:
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
    values, default_order = None, "high"
    if need == "scores":
        if config.by not in table.columns:
            raise ValueError(f"unknown method --by {config.by!r}: not one of {', '.join(BASELINES)} and not a "
                             f"column of scores file {config.scores} (its columns: {', '.join(table.columns)})")
        values = table.columns[config.by]
        default_order = table.default_order(config.by)
    elif need == "model":
        from kmix.select.baselines import mc_dropout_entropy, penultimate_features

        device = resolve_device(config.device)
        kw = dict(batch_size=config.batch_size, device=device, quiet=config.quiet)
        if config.by == "mc-dropout":
            values = mc_dropout_entropy(model, dataset, passes=config.mc_passes, p=config.mc_p,
                                        seed=seed_for(Stream.MC_DROPOUT, config.seed),
                                        **kw).numpy().astype(np.float64)
        else:
            values = penultimate_features(model, dataset, **kw)
    return labels, values, default_order


@dataclass
class Selection:
    """What `choose` decided: sorted indices, all labels, the order used (None: unranked method),
    and the CCS settings used (None unless sampling was ccs)."""

    indices: list[int]
    labels: np.ndarray
    order: str | None
    ccs: dict | None


def choose(config: SubsampleConfig) -> Selection:
    """Validate `config`, read what the method needs, and pick the subset."""
    from kmix.select.baselines import k_center_per_class

    config.validate()
    labels, values, default_order = _labels_and_scores(config)
    if config.by == "random":
        return Selection(select_random(labels, config.ratio, config.seed), labels, None, None)
    if config.by == "k-center":
        picked = sorted(k_center_per_class(values, labels, class_counts(labels, config.ratio)))
        return Selection(picked, labels, None, None)
    order = config.order or default_order
    ccs = None
    if config.sampling == "ccs":
        beta = ccs_default_beta(config.ratio) if config.ccs_beta is None else float(config.ccs_beta)
        ccs = {"beta": beta, "beta_source": "default" if config.ccs_beta is None else "given",
               "bins": config.ccs_bins}
    try:
        picked = select_by_score(labels, values, config.ratio, order, config.sampling, seed=config.seed,
                                 ccs_beta=ccs["beta"] if ccs else None, ccs_bins=config.ccs_bins)
    except ValueError as err:
        if config.scores and str(err).startswith("scores contain"):  # name the file and column it came from
            raise ValueError(f"--scores {config.scores} column {config.by!r}: {err}") from None
        raise
    return Selection(picked, labels, order, ccs)


def select_indices(config: SubsampleConfig) -> tuple[list[int], np.ndarray]:
    """The chosen dataset indices (sorted) and all labels, for a validated config."""
    sel = choose(config)
    return sel.indices, sel.labels


def _provenance(config: SubsampleConfig) -> dict:
    """What the subset was made from: the data's record, and the content hashes of the scores file and checkpoint."""
    from kmix.io import file_sha256

    out: dict = {}
    if config.data is not None:
        from kmix.data.provenance import data_provenance
        from kmix.data.registry import build_dataset

        dataset, info = build_dataset(config.data, root=config.data_root, train=True)
        out["data_provenance"] = data_provenance(config.data, info, len(dataset), config.data_root)
    if config.scores:
        out["scores_sha256"] = file_sha256(config.scores)
        sidecar = Path(config.scores).with_name(Path(config.scores).name + ".json")
        if "data_provenance" not in out and sidecar.is_file():  # without --data: the scored data's record
            scored = json.loads(sidecar.read_text()).get("data_provenance")  # (read_scores checked the JSON)
            if isinstance(scored, dict):
                out["data_provenance"] = scored
    if config.checkpoint:
        out["checkpoint_sha256"] = file_sha256(config.checkpoint)
    return out


def run_subsample(config: SubsampleConfig) -> dict:
    """Choose the subset and write `{"indices": [...], how they were chosen, per-class counts}` atomically.

    With sampling "ccs" the record also holds `"ccs": {"beta", "beta_source", "bins"}`.
    """
    sel = choose(config)
    indices, labels = sel.indices, sel.labels
    ordered = sel.order is not None
    per_class = {str(c): int(n) for c, n in zip(*np.unique(labels[indices], return_counts=True))}
    record = {
        "indices": indices, "method": config.by, "ratio": config.ratio,
        "order": sel.order, "sampling": config.sampling if ordered else None,
        "seed": config.seed, "scores": os.path.abspath(config.scores) if config.scores else None,
        "checkpoint": config.checkpoint, "data": config.data, "n_total": int(len(labels)),
        "n_selected": len(indices), "per_class": per_class,
    }
    if sel.ccs is not None:
        record["ccs"] = sel.ccs
    record.update(_provenance(config))
    write_json_atomic(Path(config.out), record)
    return record
