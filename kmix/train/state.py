"""What a training run changes and its checkpoint restores: weights, optimizer, LR schedule, GradScaler,
the mixer's generator and the counters (`Progress`). `TrainState.state_dict`/`load` are the checkpoint's
training keys; the loop adds the RNGs, the data record and the dynamics records beside them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from kmix.train.build import build_scheduler


@dataclass
class Progress:
    """Where a run stands besides its weights and RNGs: the counters a checkpoint holds and the log reads."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # batches of the current epoch already trained on
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    best_top1_err: float = math.inf
    best_epoch: int = 0
    loss_sum: float = 0.0  # this epoch's synced steps: summed loss x batch, images, seconds of data + steps
    images: int = 0
    train_s: float = 0.0
    wall_before: float = 0.0  # wall seconds of the earlier sessions of this run

    def finish_epoch(self, record: dict[str, Any]) -> None:
        """Append the epoch's record and start the next epoch's counters."""
        self.history.append(record)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.loss_sum, self.images, self.train_s = 0.0, 0, 0.0

    def account(self, losses: list[float], batch_size: int, train_images: int) -> None:
        """Add the synced steps' mean losses (the last len(losses) steps of the epoch) weighted by their images:
        batch_size each, fewer for a kept last partial batch (keep_last_batch)."""
        first = self.step_in_epoch - len(losses)  # 0-based step in the epoch of losses[0]
        for j, value in enumerate(losses):
            images = min(batch_size, train_images - (first + j) * batch_size)
            self.loss_sum += value * images
            self.images += images

    def state(self, wall_s: float) -> dict[str, Any]:
        """The checkpoint's keys for it (the format of every kmix checkpoint so far)."""
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "history": list(self.history), "best_top1_err": self.best_top1_err, "best_epoch": self.best_epoch,
                "epoch_accum": {"loss_sum": self.loss_sum, "images": self.images, "train_s": self.train_s},
                "wall_s": wall_s}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        accum = state["epoch_accum"]
        return cls(epoch=state["epoch"], step_in_epoch=state["step_in_epoch"], global_step=state["global_step"],
                   history=list(state["history"]), best_top1_err=state["best_top1_err"],
                   best_epoch=state["best_epoch"], loss_sum=accum["loss_sum"], images=accum["images"],
                   train_s=accum["train_s"], wall_before=state["wall_s"])


@dataclass
class TrainState:
    """The objects a training step changes, with the counters; `model` is the Normalized wrapper (model.net is
    what checkpoints hold)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    mix_generator: torch.Generator
    progress: Progress = field(default_factory=Progress)

    def state_dict(self, wall_s: float) -> dict[str, Any]:
        """The checkpoint's training keys (model, optimizer, scheduler, scaler, the Progress keys, mix_generator)."""
        return {"model": self.model.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                **self.progress.state(wall_s), "mix_generator": self.mix_generator.get_state()}

    def load(self, state: dict[str, Any], config, steps_per_epoch: int) -> None:
        """Restore from a checkpoint; the LR schedule then follows `config` (e.g. more epochs), not the one
        pickled in the checkpoint."""
        self.model.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        fresh = build_scheduler(config, torch.optim.SGD([torch.zeros(1)], lr=1.0), steps_per_epoch)
        self.scheduler.lr_lambdas = fresh.lr_lambdas
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress.from_state(state)
