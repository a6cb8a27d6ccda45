"""Learning-rate schedules as a picklable per-step multiplier (for `torch.optim.lr_scheduler.LambdaLR`)."""
from __future__ import annotations

import bisect
import math


class LRMultiplier:
    """lr factor at optimizer step t: linear warmup, then step decay, cosine annealing or constant.

    Step decay follows the epoch count (factor gamma**(number of milestones <= epoch)) as in the
    CutMix paper's recipes; cosine and warmup follow the fractional epoch t / steps_per_epoch.
    """

    def __init__(self, schedule: str, *, epochs: int, steps_per_epoch: int, milestones: list[int] | None = None,
                 gamma: float = 0.1, warmup_epochs: float = 0.0):
        if schedule not in ("step", "cosine", "constant"):
            raise ValueError(f"unknown schedule {schedule!r}; choose from step, cosine, constant")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.schedule = schedule
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.milestones = sorted(milestones or [])
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs

    def __call__(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        if epoch < self.warmup_epochs:
            return (epoch + 1.0 / self.steps_per_epoch) / self.warmup_epochs
        if self.schedule == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, int(epoch))
        if self.schedule == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1e-12)
            progress = min(1.0, (epoch - self.warmup_epochs) / span)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0
