"""What a training run writes for people: config.yaml, metrics.jsonl, TensorBoard events, the progress bar,
one line per epoch, summary.json and curves.png. Only rank 0 writes; the others hold a silent log."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kmix.io import write_json_atomic, write_text_atomic
from kmix.train.config import TrainConfig, save_config
from kmix.train.plots import plot_curves
from kmix.train.state import Progress


class RunLog:
    """The run folder's logs and the terminal's lines for one run (`active` on rank 0 only)."""

    def __init__(self, config: TrainConfig, active: bool):
        self.config, self.out, self.active = config, Path(config.out), active
        self.split, self.prefix = "test", ""
        self.writer = None
        self.bar = None

    def open(self, history: list[dict[str, Any]], epochs_done: int, eval_split: str, prefix: str) -> None:
        """config.yaml, metrics.jsonl as the checkpoint has it, and the TensorBoard writer (purging later steps).
        `prefix` is "train_" when the evaluation is on training images (the records' keys say so)."""
        self.split, self.prefix = eval_split, prefix
        if not self.active:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.out / "config.yaml")
        self.write_metrics(history)
        if self.config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.out), purge_step=epochs_done + 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def say(self, msg: str) -> None:
        if self.active and not self.config.quiet:
            tqdm.write(msg)

    # --- per epoch ---
    def start_epoch(self, epoch: int, total: int, done: int) -> None:
        """A progress bar over the epoch's steps (`done` of them already trained)."""
        self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{self.config.epochs}",
                        disable=self.config.quiet or not self.active, leave=False, dynamic_ncols=True)

    def step(self) -> None:
        self.bar.update(1)

    def rate(self, loss: float, img_per_s: float) -> None:
        """The bar's postfix at a host sync."""
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{img_per_s:.0f}")

    def end_epoch(self) -> None:
        self.bar.close()

    def epoch(self, record: dict[str, Any], history: list[dict[str, Any]], improved: bool) -> None:
        """metrics.jsonl, TensorBoard scalars and the epoch's line."""
        if not self.active:
            return
        self.write_metrics(history)
        p, split = self.prefix, self.split
        if self.writer is not None:
            self.writer.add_scalar("train/train_loss", record["train_loss"], record["epoch"])
            self.writer.add_scalar("lr", record["lr"], record["epoch"])
            self.writer.add_scalar("img_per_s", record["img_per_s"], record["epoch"])
            if f"{p}top1_err" in record:
                for key in ("eval_loss", "top1_err", "top5_err"):
                    self.writer.add_scalar(f"{split}/{key}", record[f"{p}{key}"], record["epoch"])
            self.writer.flush()
        if not self.config.quiet:
            errs = (f"  {split} top1 err {record[f'{p}top1_err']:.2f}%  top5 err {record[f'{p}top5_err']:.2f}%"
                    if f"{p}top1_err" in record else "  (not evaluated)")
            tqdm.write(f"epoch {record['epoch']}/{self.config.epochs}  loss {record['train_loss']:.4f}{errs}  "
                       f"lr {record['lr']:.4g}  {record['img_per_s']:.0f} img/s" + ("  *best" if improved else ""))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """metrics.jsonl rewritten from the checkpointed history (so a resume never duplicates lines)."""
        write_text_atomic(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    # --- the end ---
    def finish(self, summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """summary.json and curves.png."""
        if not self.active:
            return
        cfg = self.config
        write_json_atomic(self.out / "summary.json", summary)
        if cfg.plot and history:
            plot_curves(history, self.out / "curves.png",
                        title=f"{Path(cfg.data).name} {cfg.model} {cfg.mix} (K={cfg.k}, alpha={cfg.alpha:g})")


def run_summary(progress: Progress, prefix: str, **facts: Any) -> dict[str, Any]:
    """summary.json: the last epoch's errors, the best, steps, time, img/s over every epoch, and `facts`
    (data record, params, device, names, checkpoints, ...) in the order given."""
    p = prefix
    last = progress.history[-1] if progress.history else {}
    train_images = sum(r["images"] for r in progress.history)
    train_s = sum(r["train_s"] for r in progress.history)
    wall_s, data_record = facts.pop("wall_s"), facts.pop("data_record")
    return {
        f"{p}top1_err": last.get(f"{p}top1_err"), f"{p}top5_err": last.get(f"{p}top5_err"),
        f"best_{p}top1_err": None if math.isinf(progress.best_top1_err) else progress.best_top1_err,
        "best_epoch": progress.best_epoch, **data_record, "epochs": progress.epoch, "steps": progress.global_step,
        "train_loss": last.get("train_loss"), "wall_s": wall_s, "img_per_s": train_images / train_s if train_s else None,
        **facts,
    }
