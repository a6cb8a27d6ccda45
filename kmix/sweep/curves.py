"""curves.png for a table: test top-1 error per epoch, one line per group (mean over seeds) with a
+-1 std band, one panel per (data, model, epochs) so that runs that differ there never share axes."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from kmix.io import atomic_write
from kmix.sweep.labels import method_label, plain

if TYPE_CHECKING:
    from kmix.sweep.table import Group, Table


def group_curve(group: "Group") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) of top1_err over the group's runs, on the epochs every run evaluated."""
    per_run = []
    for run in group.runs:
        key = run.prefix + "top1_err"  # train_top1_err for a run evaluated on its training images
        per_run.append({rec["epoch"]: rec[key] for rec in run.history if rec.get(key) is not None})
    epochs = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    errs = np.array([[d[e] for e in epochs] for d in per_run], dtype=np.float64).reshape(len(per_run), len(epochs))
    std = errs.std(axis=0, ddof=1) if len(per_run) > 1 else np.zeros(len(epochs))
    return np.array(epochs), errs.mean(axis=0), std


def plot_group_curves(table: "Table", path: str | os.PathLike) -> None:
    """Write the PNG atomically; the legend names each group by its method and the fields that vary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels: dict[tuple, list] = {}
    for group in table.groups:
        panels.setdefault((group.key.get("data"), group.key.get("model"), group.key.get("epochs")), []).append(group)
    extra = [f for f in table.shown if f not in ("data", "model", "epochs", "mix", "k", "alpha", "p")]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, ((data, model, epochs), groups) in zip(axes[0], panels.items()):
        for group in groups:
            x, mean, std = group_curve(group)
            label = method_label(group.key) + "".join(f" {f}={plain(group.key.get(f), 30)}" for f in extra)
            style = {"marker": "o", "markersize": 3} if len(x) <= 40 else {}
            line, = ax.plot(x, mean, label=f"{label} (n={len(group.runs)})", **style)
            if len(group.runs) > 1:
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
        split = groups[0].key.get("eval_split", "test")
        ax.set_title(f"{data} {model}, {epochs} epochs (mean over seeds, band +-1 std)", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{split} top-1 error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
