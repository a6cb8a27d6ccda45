"""`kmix eval`: top-1/top-5 of a checkpoint on any dataset spec, optionally over a class subset of the model's
classes (ImageNet-A/O: 200 of 1000 classes), with labels matched to the model's classes by name."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from kmix.analysis.options import EvalOptions, batch_size_option, model_classes_option, num_classes_option
from kmix.analysis.outputs import new_figure, save_figure, write_csv, write_json
from kmix.data.info import class_index
from kmix.options import data_option, option


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """Per-sample booleans: is the label among the top-k logits (k capped at the number of classes)."""
    if logits.dim() != 2 or len(logits) != len(labels):
        raise ValueError(f"logits (N, C) and labels (N,) must agree, got {tuple(logits.shape)} and {tuple(labels.shape)}")
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    return {k: (top[:, :k] == labels[:, None]).any(dim=1) for k in ks}


def resolve_label_space(model_classes: Sequence[str], num_model_classes: int, dataset_classes: Sequence[str],
                        subset: Sequence[str] | None) -> tuple[list[int] | None, list[int] | None, list[str]]:
    """Decide how logits and dataset labels meet.

    Returns (logit positions or None for all, dataset label -> evaluated-class index or None for identity,
    names of the evaluated classes). With a subset the logits are restricted to the subset's positions in the
    model's class order and labels are matched by name; without one, labels are matched by name when both class
    lists are known and differ.
    """
    from kmix.analysis.classes import class_positions

    if subset is not None:
        positions = class_positions(model_classes, subset)
        if dataset_classes:
            idx = class_index(subset)
            return positions, [idx.get(c, -1) for c in dataset_classes], list(subset)
        return positions, None, list(subset)
    names = list(model_classes) or [str(i) for i in range(num_model_classes)]
    if dataset_classes and model_classes and list(dataset_classes) != list(model_classes):
        idx = class_index(model_classes)
        missing = [c for c in dataset_classes if c not in idx]
        if missing:
            raise ValueError(f"dataset classes do not match the model's classes: {len(missing)} missing from the "
                             f"model, e.g. {missing[:5]} (pass --classes to evaluate on a subset)")
        return None, [idx[c] for c in dataset_classes], names
    if len(dataset_classes) > num_model_classes:
        raise ValueError(f"dataset has {len(dataset_classes)} classes but the model only {num_model_classes}")
    return None, None, names


@dataclass
class EvalConfig(EvalOptions):
    """`kmix eval`: checkpoint, dataset spec, optional class-subset file, evaluation subset."""

    checkpoint: str = option(help="checkpoint to evaluate")
    data: str = data_option()
    out: str | None = option(None, "output folder", default_text="print only")
    classes: str | None = option(None, "class-subset file (names/wnids, one per line, or JSON list), matched "
                                       "against the model's classes")
    model_classes: str | None = model_classes_option()
    num_classes: int | None = num_classes_option()
    batch_size: int = batch_size_option(256)


def run_eval(cfg: EvalConfig) -> dict:
    """Top-1/top-5 accuracy and error; with cfg.out, writes eval.json, per_class.csv and per_class.png."""
    from kmix.analysis.data import collect_logits, load_eval_data, make_loader, with_channels
    from kmix.analysis.models import setup_eval
    from kmix.data.for_model import image_size_for

    device, lm, subset = setup_eval(cfg)
    resolve_label_space(lm.class_names, lm.num_classes, (), subset)  # class subset vs model: fail before any data
    dataset, info = load_eval_data(cfg.data, root=cfg.data_root, limit=cfg.limit, seed=cfg.seed,
                                   image_size=image_size_for(cfg.data, lm.meta, cfg.image_size), classes=subset)
    positions, mapping, eval_names = resolve_label_space(lm.class_names, lm.num_classes, info.class_names, subset)
    dataset = with_channels(dataset, info.in_chans, lm.meta.get("in_chans", info.in_chans))
    logits, labels = collect_logits(lm.model, make_loader(dataset, cfg.batch_size), device, positions, cfg.quiet)
    if mapping is not None:
        labels = torch.as_tensor(mapping, dtype=torch.long)[labels]
    if (labels < 0).any():
        raise ValueError("some images belong to classes outside the class subset")
    hits = topk_correct(logits, labels)
    n = len(labels)
    result = {"model": lm.label, "data": info.name, "n": n, "num_classes": len(eval_names),
              "top1_acc": int(hits[1].sum()) / n, "top5_acc": int(hits[5].sum()) / n}
    # errors in percent (as `kmix train` reports them), accuracies as fractions
    result["top1_err"], result["top5_err"] = 100 * (1 - result["top1_acc"]), 100 * (1 - result["top5_acc"])
    per_class = []
    for c in sorted(set(labels.tolist())):
        sel = labels == c
        m = int(sel.sum())
        per_class.append({"class": eval_names[c], "n": m, "top1_acc": int(hits[1][sel].sum()) / m,
                          "top5_acc": int(hits[5][sel].sum()) / m})
    if cfg.out:
        out = Path(cfg.out)
        write_json(out / "eval.json", {"config": asdict(cfg), **result})
        write_csv(out / "per_class.csv", per_class)
        _plot(per_class, result, out / "per_class.png")
    if not cfg.quiet:
        print(f"{lm.label} on {info.name} (n={n}, {len(eval_names)} classes): top-1 err {result['top1_err']:.2f}%  "
              f"top-5 err {result['top5_err']:.2f}%")
    return {**result, "per_class": per_class}


def _plot(per_class: list[dict], result: dict, path: Path) -> None:
    rows = sorted(per_class, key=lambda r: r["top1_acc"])
    fig, ax = new_figure(figsize=(max(6, 0.12 * len(rows) + 2), 4))
    ax.bar(range(len(rows)), [r["top1_acc"] for r in rows])
    if len(rows) <= 30:
        ax.set_xticks(range(len(rows)), [r["class"] for r in rows], rotation=90, fontsize=7)
    ax.axhline(result["top1_acc"], color="k", ls="--", lw=0.8, label=f"overall {result['top1_acc']:.3f}")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(f"{result['model']} on {result['data']}: per-class top-1 (sorted)")
    ax.legend()
    save_figure(fig, path)
