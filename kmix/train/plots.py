"""A PNG of the training curves (train loss, test top-1/top-5 error per epoch), written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Two panels: train/test loss and test top-1/top-5 error (%) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("no epochs to plot")
    epochs = [r["epoch"] for r in history]
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 40 else {}
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train (mixed targets)", **style)
    ax_loss.plot(epochs, [r["test_loss"] for r in history], label="test", **style)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_err.plot(epochs, [r["top1_err"] for r in history], label="top-1", **style)
    ax_err.plot(epochs, [r["top5_err"] for r in history], label="top-5", **style)
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("test error (%)")
    ax_err.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
