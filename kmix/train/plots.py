"""A PNG of the training curves (train loss, evaluation loss and top-1/top-5 error per epoch), written atomically."""
from __future__ import annotations

import os
from typing import Any

from kmix.io import atomic_write


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Two panels: train/evaluation loss and top-1/top-5 error (%) on the evaluated split against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("no epochs to plot")
    epochs = [r["epoch"] for r in history]
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 40 else {}
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train (mixed targets)", **style)
    evaluated = [r for r in history if r.get("eval_split")]
    split = evaluated[-1]["eval_split"] if evaluated else "test"
    p = "train_" if split == "train" else ""  # eval-on-train runs say so in their keys
    ev_epochs = [r["epoch"] for r in evaluated]
    ax_loss.plot(ev_epochs, [r[f"{p}eval_loss"] for r in evaluated], label=f"{split} (evaluation)", **style)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_err.plot(ev_epochs, [r[f"{p}top1_err"] for r in evaluated], label="top-1", **style)
    ax_err.plot(ev_epochs, [r[f"{p}top5_err"] for r in evaluated], label="top-5", **style)
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel(f"{split} error (%)")
    ax_err.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)
