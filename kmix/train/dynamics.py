"""Per-sample training dynamics: for every training image and epoch, the loss, the logit margin and
whether the prediction was right — the records that forgetting events (Toneva et al. 2019), AUM
(Pleiss et al. 2020) and Dyn-Unc (He et al. 2024) are computed from (`kmix.select.dynamics_scores`).

What is recorded, per (epoch, dataset index), from logits z of the image with its hard label y:
- `loss`: cross-entropy -log softmax(z)_y (hard label, no smoothing, whatever the training target),
  so the target probability is exactly exp(-loss);
- `margin`: z_y - max_{c != y} z_c (Pleiss et al.'s margin, on logits);
- `correct`: margin > 0 (computed before rounding; a tie counts as wrong).

Which logits: with mix "none" the training forward pass itself (train mode, before the update, as
Toneva et al. and Pleiss et al. record). With a mixer the training pass sees composites, so an
extra no-grad forward pass in **eval mode** on the same augmented, unmixed batch, also before the
update. Eval mode leaves BatchNorm statistics, dropout and every RNG untouched, so a run trains
bit for bit the same with or without recording.

Storage: float16 `loss`/`margin` and bool `correct` of shape (epochs, N) over the **full** training
set's index space (a `--subset` run leaves the other rows NaN; a sample not seen in an epoch, e.g.
in the dropped last partial batch, has NaN loss and margin there and correct False). That is 5
bytes per sample and epoch (CIFAR-10, 200 epochs: 50 MB). The current epoch's row lives on the
training device and is written by index without a host sync; it is copied to the host (gathered
over DDP ranks, each of which records its own samples) only at checkpoints and at the end of an
epoch, so it travels in `last.pt` and a resumed run continues its records exactly.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from kmix.runs import load_state, save_state
from kmix.train import distributed as D

FORMAT = 1
FIELDS = ("loss", "margin", "correct")
KIND = "kmix-dynamics"  # the state-file kind of dynamics.pt (kmix.runs.save_state)
FILE_KEYS = (*FIELDS, "labels", "epochs")  # what an untagged dynamics.pt (older kmix) must hold


def dynamics_from_logits(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, margin, correct) per row of `logits` (B, C) for hard labels `target` (B,), in float32.

    loss = -log softmax(z)_y; margin = z_y - max_{c != y} z_c; correct = margin > 0. No host sync.
    """
    z = logits.detach().float()
    y = target.view(-1, 1)
    z_y = z.gather(1, y)[:, 0]
    other = z.scatter(1, y, float("-inf")).amax(1)
    margin = z_y - other
    loss = -z.log_softmax(1).gather(1, y)[:, 0]
    return loss, margin, margin > 0


class DynamicsRecorder:
    """Records (loss, margin, correct) per sample and epoch; host tensors of shape (epochs, n).

    Use: `begin_epoch(e)` before the epoch's first batch, `record(index, logits, target)` per batch
    (device tensors; `index` = full-training-set indices), `flush(dist)` before a checkpoint and at
    the end of the epoch, `state_dict()` into the checkpoint, `load_state_dict()` on resume.
    """

    def __init__(self, epochs: int, n: int, device: torch.device):
        if epochs < 1 or n < 1:
            raise ValueError(f"dynamics need epochs >= 1 and n >= 1, got epochs={epochs}, n={n}")
        self.n, self.device = n, torch.device(device)
        self.loss = torch.full((epochs, n), float("nan"), dtype=torch.float16)
        self.margin = torch.full((epochs, n), float("nan"), dtype=torch.float16)
        self.correct = torch.zeros((epochs, n), dtype=torch.bool)
        self.row_epoch: int | None = None
        self._row: dict[str, torch.Tensor] = {}

    @property
    def epochs(self) -> int:
        return self.loss.shape[0]

    def _grow(self, epochs: int) -> None:
        """More epoch rows (a run resumed with more epochs)."""
        extra = epochs - self.epochs
        if extra > 0:
            self.loss = torch.cat([self.loss, torch.full((extra, self.n), float("nan"), dtype=torch.float16)])
            self.margin = torch.cat([self.margin, torch.full((extra, self.n), float("nan"), dtype=torch.float16)])
            self.correct = torch.cat([self.correct, torch.zeros((extra, self.n), dtype=torch.bool)])

    def begin_epoch(self, epoch: int) -> None:
        """Put epoch `epoch`'s row (empty, or what a resumed mid-epoch checkpoint holds) on the device."""
        self._grow(epoch + 1)
        self.row_epoch = epoch
        self._row = {name: getattr(self, name)[epoch].to(self.device) for name in FIELDS}

    def record(self, index: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Write the batch's records at dataset indices `index` into the device row (no host sync)."""
        loss, margin, correct = dynamics_from_logits(logits, target)
        index = index.to(self.device, non_blocking=True)
        self._row["loss"][index] = loss.half()
        self._row["margin"][index] = margin.half()
        self._row["correct"][index] = correct

    def flush(self, dist: D.DistInfo) -> None:
        """Copy the device row to the host, merged over ranks (each rank holds the samples it saw).

        Collective under DDP: every rank must call it at the same point."""
        if self.row_epoch is None:
            return
        rows = D.gather_objects({name: t.cpu() for name, t in self._row.items()}, dist)  # rank order
        merged = dict(rows[0])
        for other in rows[1:]:  # samples are disjoint across ranks within an epoch: a union
            new = torch.isnan(merged["loss"]) & ~torch.isnan(other["loss"])
            for name in FIELDS:
                merged[name] = torch.where(new, other[name], merged[name])
        for name in FIELDS:
            getattr(self, name)[self.row_epoch] = merged[name]

    def state_dict(self) -> dict[str, Any]:
        """Host records for the checkpoint (flush first)."""
        return {"format": FORMAT, "loss": self.loss.clone(), "margin": self.margin.clone(),
                "correct": self.correct.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore records saved by `state_dict` (rows beyond this run's epochs are kept)."""
        if state.get("format") != FORMAT or state["loss"].shape[1] != self.n:
            raise ValueError(f"the checkpoint's dynamics records do not fit this run (format "
                             f"{state.get('format')}, {state['loss'].shape[1]} samples; this run has {self.n})")
        self._grow(state["loss"].shape[0])
        rows = state["loss"].shape[0]
        for name in FIELDS:
            getattr(self, name)[:rows] = state[name]

    def save(self, path: str | os.PathLike, epochs: int, labels: torch.Tensor, meta: dict[str, Any]) -> None:
        """Write the first `epochs` rows, the full set's `labels` and `meta` to `path` (atomic)."""
        payload = {"format": FORMAT, "epochs": epochs, "n": self.n, "labels": labels.cpu().long(),
                   **{name: getattr(self, name)[:epochs].clone() for name in FIELDS}, **meta}
        save_state(path, KIND, payload)  # atomic, tagged, with a content checksum


def read_dynamics(path: str | os.PathLike) -> dict[str, Any]:
    """A dynamics.pt written by `DynamicsRecorder.save` (an untagged one of older kmix too), checksum and kind
    checked by kmix.runs.load_state; the error names the file."""
    return load_state(path, KIND, label="dynamics file", untagged_keys=FILE_KEYS)


def run_meta(config, train_indices, steps: int) -> dict[str, Any]:
    """What dynamics.pt says about the run that recorded it (which logits, mixer, data, model, seed, subset)."""
    source = ("training forward pass (train mode, before the update)" if config.mix == "none" else
              "extra forward pass in eval mode on the unmixed augmented batch, before the update")
    return {"source": source, "mix": config.mix, "data": config.data, "model": config.model, "seed": config.seed,
            "train_indices": None if train_indices is None else [int(i) for i in train_indices], "steps": steps}
