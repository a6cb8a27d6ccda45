"""`kmix ood`: out-of-distribution detection with the max-softmax probability, ImageNet-O style:
the OOD images are the positive class and the anomaly score is -MSP (over a class subset's logits if given)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from kmix.analysis.outputs import new_figure, save_figure, write_csv, write_json
from kmix.analysis.options import EvalOptions, limit_option, model_classes_option, num_classes_option
from kmix.options import data_option, option


def msp_anomaly_score(logits: torch.Tensor) -> torch.Tensor:
    """Negated maximum softmax probability: higher = more anomalous."""
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must be (N, C) with C >= 1, got shape {tuple(logits.shape)}")
    return -torch.softmax(logits.float(), dim=1).max(dim=1).values


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr_level: float = 0.95) -> float:
    """False-positive rate at the first threshold whose true-positive rate reaches `tpr_level` (positives = label 1)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[int(np.searchsorted(tpr, tpr_level, side="left"))])


def ood_metrics(in_scores, ood_scores) -> dict:
    """AUPR (average precision, OOD = positive), AUROC and FPR at 95% TPR from anomaly scores (higher = OOD)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_in = np.asarray(in_scores, dtype=np.float64).ravel()
    s_out = np.asarray(ood_scores, dtype=np.float64).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError(f"need in-distribution and OOD scores, got {len(s_in)} and {len(s_out)}")
    labels = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    scores = np.concatenate([s_in, s_out])
    return {"aupr": float(average_precision_score(labels, scores)), "auroc": float(roc_auc_score(labels, scores)),
            "fpr_at_95_tpr": fpr_at_tpr(labels, scores, 0.95), "n_in": int(len(s_in)), "n_ood": int(len(s_out)),
            "ood_fraction": float(len(s_out) / len(labels))}


@dataclass
class OODConfig(EvalOptions):
    """`kmix ood`: checkpoint, in-distribution and OOD data specs, optional class subset, evaluation subset."""

    checkpoint: str = option(help="checkpoint to evaluate")
    ood_data: str = option(help="OOD dataset spec, e.g. an ImageFolder path (ImageNet-O)")
    in_data: str = data_option(help="in-distribution dataset spec")
    out: str = option("ood", "output folder")
    classes: str | None = option(None, "class-subset file (names/wnids, one per line, or JSON list): MSP over "
                                       "these classes' logits, in-data restricted to them")
    model_classes: str | None = model_classes_option()
    num_classes: int | None = num_classes_option()
    limit: int | None = limit_option(1000)


def run_ood(cfg: OODConfig) -> dict:
    """Score in-distribution and OOD images with -MSP; write ood.json, scores.csv and ood.png (histogram, ROC, PR)."""
    from kmix.analysis.classes import class_positions
    from kmix.analysis.data import collect_logits, load_eval_data, make_loader, with_channels
    from kmix.analysis.models import setup_eval
    from kmix.data.for_model import image_size_for
    from kmix.data.registry import DATASET_NAMES

    device, lm, subset = setup_eval(cfg)
    positions = class_positions(lm.class_names, subset) if subset else None
    in_ds, in_info = load_eval_data(cfg.in_data, root=cfg.data_root, limit=cfg.limit, seed=cfg.seed,
                                    image_size=image_size_for(cfg.in_data, lm.meta, cfg.image_size), classes=subset)
    ood_size = cfg.image_size
    if ood_size is None and cfg.ood_data not in DATASET_NAMES:  # an ImageFolder: resize to the in-data size
        ood_size = in_info.input_size
    ood_ds, ood_info = load_eval_data(cfg.ood_data, root=cfg.data_root, limit=cfg.limit, seed=cfg.seed, image_size=ood_size)
    in_ds = with_channels(in_ds, in_info.in_chans, lm.meta.get("in_chans", in_info.in_chans))
    ood_ds = with_channels(ood_ds, ood_info.in_chans, lm.meta.get("in_chans", in_info.in_chans))
    in_logits, _ = collect_logits(lm.model, make_loader(in_ds, cfg.batch_size), device, positions, cfg.quiet, "in-data")
    ood_logits, _ = collect_logits(lm.model, make_loader(ood_ds, cfg.batch_size), device, positions, cfg.quiet, "ood-data")
    s_in, s_ood = msp_anomaly_score(in_logits).numpy(), msp_anomaly_score(ood_logits).numpy()
    metrics = ood_metrics(s_in, s_ood)
    out = Path(cfg.out)
    write_csv(out / "scores.csv", [{"source": "in", "msp": -float(s)} for s in s_in]
              + [{"source": "ood", "msp": -float(s)} for s in s_ood])
    result = {"config": asdict(cfg), "model": lm.label, "in_data": in_info.name, "ood_data": ood_info.name,
              "num_scored_classes": len(positions) if positions else lm.num_classes, **metrics}
    write_json(out / "ood.json", result)
    _plot(s_in, s_ood, metrics, out / "ood.png")
    if not cfg.quiet:
        print(f"{lm.label}: in={in_info.name} (n={metrics['n_in']}) ood={ood_info.name} (n={metrics['n_ood']})  "
              f"AUPR {metrics['aupr']:.4f}  AUROC {metrics['auroc']:.4f}  FPR@95TPR {metrics['fpr_at_95_tpr']:.4f}")
    return result


def _plot(s_in: np.ndarray, s_ood: np.ndarray, metrics: dict, path: Path) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_ood))])
    scores = np.concatenate([s_in, s_ood])
    fig, axes = new_figure(1, 3, figsize=(14, 4))
    bins = np.linspace(0, 1, 31)
    axes[0].hist(-s_in, bins=bins, alpha=0.6, label="in-distribution", density=True)
    axes[0].hist(-s_ood, bins=bins, alpha=0.6, label="OOD", density=True)
    axes[0].set_xlabel("max softmax probability")
    axes[0].legend()
    fpr, tpr, _ = roc_curve(labels, scores)
    axes[1].plot(fpr, tpr)
    axes[1].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[1].set_xlabel("FPR (in-data flagged)")
    axes[1].set_ylabel("TPR (OOD detected)")
    axes[1].set_title(f"ROC, AUROC {metrics['auroc']:.3f}")
    prec, rec, _ = precision_recall_curve(labels, scores)
    axes[2].plot(rec, prec)
    axes[2].axhline(metrics["ood_fraction"], color="k", ls="--", lw=0.8)
    axes[2].set_xlabel("recall (OOD)")
    axes[2].set_ylabel("precision (OOD)")
    axes[2].set_title(f"PR, AUPR {metrics['aupr']:.3f}")
    save_figure(fig, path)
