"""Model checkpoints: atomic tagged writes (kmix.runs), clear errors on missing/corrupt files, and rebuilding a model from one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from kmix.models import Normalized, build_model
from kmix.runs import load_state, rng_state, save_state
from kmix.train import distributed as D


TRAIN_KIND = "kmix-train"  # the kind tag of last.pt / best.pt (and every model checkpoint kmix reads)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a model checkpoint atomically (temp file in the same folder, fsync, rename), tagged kmix-train."""
    save_state(path, TRAIN_KIND, state)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a kmix model checkpoint, naming the file in the error when it is missing, unreadable or not one."""
    state = load_state(path, TRAIN_KIND, label="checkpoint", untagged_keys=("model", "model_meta"),
                       map_location=map_location)
    if "model" not in state or "model_meta" not in state:
        raise ValueError(f"checkpoint {path} is not a kmix checkpoint (needs 'model' and 'model_meta' keys)")
    return state


def model_meta(name: str, info, **model_kwargs) -> dict[str, Any]:
    """What `model_from_meta` needs: registry name, builder kwargs, and the dataset facts."""
    return {
        "name": name,
        "num_classes": info.num_classes,
        "in_chans": info.in_chans,
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "kwargs": dict(model_kwargs),
        "data": info.to_dict(),
    }


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Rebuild the normalised model (random weights) described by `meta`."""
    net = build_model(meta["name"], num_classes=meta["num_classes"], in_chans=meta["in_chans"], **meta.get("kwargs", {}))
    return Normalized(net, meta["mean"], meta["std"])


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Return (model in eval mode taking [0, 1] images, model_meta) from a kmix checkpoint."""
    state = load_checkpoint(path, map_location=map_location)
    meta = state["model_meta"]
    model = model_from_meta(meta)
    model.net.load_state_dict(state["model"])
    return model.to(map_location).eval(), meta


class RunCheckpoints:
    """A training run's last.pt (everything a resume needs) and best.pt (the best evaluated weights):
    rank 0 writes, every rank takes part (the RNG states are gathered from all)."""

    def __init__(self, out: Path, meta: dict[str, Any], config: dict[str, Any], dist_info):
        self.last, self.best = out / "last.pt", out / "best.pt"
        self.meta, self.config, self.dist = meta, config, dist_info

    def save_last(self, train_state: dict[str, Any], extra: dict[str, Any], model: nn.Module, where: str) -> None:
        """last.pt = `train_state` (TrainState.state_dict) + meta, config, every rank's RNGs and `extra`;
        refused, keeping the last good one, when a weight of `model` is not finite (`where`: epoch and step)."""
        bad = [n for n, w in model.named_parameters() if not torch.isfinite(w).all()]
        if bad:  # every rank holds the same weights, so every rank stops here
            raise FloatingPointError(f"parameters {bad[:3]} became non-finite at {where}; kept the last good "
                                     f"checkpoint {self.last}")
        rngs = D.gather_objects(rng_state(), self.dist)  # collective: every rank calls it
        if self.dist.is_main:
            save_checkpoint(self.last, {**train_state, "model_meta": self.meta, "config": self.config, "rng": rngs,
                                        **extra})
        D.barrier(self.dist)

    def save_best(self, model: nn.Module, record: dict[str, Any], eval_split: str, prefix: str) -> None:
        """best.pt: `model`'s weights with the epoch record that made them the best."""
        if self.dist.is_main:
            save_checkpoint(self.best, {"model": model.state_dict(), "model_meta": self.meta, "config": self.config,
                                        "epoch": record["epoch"], "eval_split": eval_split,
                                        **{f"{prefix}{k}": record[f"{prefix}{k}"] for k in ("top1_err", "top5_err")}})
