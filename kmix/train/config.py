"""`TrainConfig`: every knob of a training run, filled from defaults, a YAML recipe and CLI flags."""
from __future__ import annotations

import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from kmix.io import write_text_atomic
from kmix.mix.registry import MIX_NAMES

SCHEDULES = ("step", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
LOADERS = ("auto", "device", "workers")

# fields a resumed run must share with the run it continues (the others may change, e.g. epochs)
RUN_DEFINING = ("data", "model", "mix", "k", "alpha", "p", "batch_size", "seed", "subset", "image_size",
                "model_kwargs", "genotype", "label_smoothing", "lr", "momentum", "nesterov", "weight_decay",
                "schedule", "milestones", "gamma", "warmup_epochs", "limit_train_batches", "grad_clip", "cutout",
                "val_fraction", "eval_on_train")


@dataclass
class TrainConfig:
    """One training run. Defaults are the quick-start: small CNN + DCutMix (K=5, alpha=0.2) on digits, ~1 min on 2 CPU cores."""

    # what to train on what
    data: str = "digits"
    data_root: str | None = None
    download: bool = False
    augment: bool = True
    check_images: bool = False
    image_size: int | None = None
    subset: str | list[int] | None = None
    val_fraction: float = 0.0  # > 0: hold out this seeded per-class fraction of the training set and evaluate on it
    eval_on_train: bool = False  # evaluate on the training images (summary keys then say train_)
    eval_every: int = 1  # evaluate every N epochs (the last epoch always)
    loader: str = "auto"  # device: uint8 set on the training device, batched augmentation; workers: DataLoader
    model: str = "small_cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    genotype: str | dict | None = None
    # mixing
    mix: str = "dcutmix"
    k: int = 5
    alpha: float = 0.2
    p: float = 1.0
    label_smoothing: float = 0.0
    # optimisation
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    auxiliary_weight: float = 0.0
    drop_path: float = 0.0
    grad_clip: float = 0.0  # max global gradient L2 norm; 0 = off (DARTS evaluation uses 5)
    cutout: int = 0  # side of the Cutout square in pixels, 0 = off (DARTS evaluation uses 16)
    # run
    seed: int = 0
    out: str | None = None
    resume: bool = False
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    amp: str = "none"
    channels_last: bool = False
    ckpt_every_steps: int = 0
    limit_train_batches: int | None = None
    record_dynamics: bool = False  # per-sample loss/margin/correct per epoch -> dynamics.pt (kmix.train.dynamics)
    tensorboard: bool = True
    plot: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Check every field; raise ValueError/TypeError naming the field and the bad value."""
        for name in ("data", "model", "mix", "schedule", "device", "amp"):
            _require(isinstance(getattr(self, name), str) and getattr(self, name), name, getattr(self, name),
                     "a non-empty string", TypeError)
        _choice("mix", self.mix, MIX_NAMES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("loader", self.loader, LOADERS)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("k", "epochs", "batch_size", "seed", "workers", "ckpt_every_steps", "eval_every"):
            _int(name, getattr(self, name))
        _require(self.k >= 2, "k", self.k, ">= 2 (images mixed per sample)")
        _require(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _require(self.batch_size >= 2, "batch_size", self.batch_size, ">= 2 (mixing needs partners)")
        _require(self.workers >= 0, "workers", self.workers, ">= 0")
        _require(self.eval_every >= 1, "eval_every", self.eval_every, ">= 1 (epochs between evaluations)")
        _require(self.ckpt_every_steps >= 0, "ckpt_every_steps", self.ckpt_every_steps, ">= 0 (0 = per epoch only)")
        if self.threads is not None:
            _int("threads", self.threads)
            _require(self.threads >= 1, "threads", self.threads, ">= 1 or null (torch's default)")
        if self.limit_train_batches is not None:
            _int("limit_train_batches", self.limit_train_batches)
            _require(self.limit_train_batches >= 1, "limit_train_batches", self.limit_train_batches, ">= 1 or null")
        if self.image_size is not None:
            _int("image_size", self.image_size)
            _require(self.image_size >= 4, "image_size", self.image_size, ">= 4 or null")
        for name in ("alpha", "p", "label_smoothing", "lr", "momentum", "weight_decay", "gamma", "warmup_epochs",
                     "auxiliary_weight", "drop_path", "grad_clip", "val_fraction"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                     name, value, "a finite number", TypeError)
        _require(self.alpha > 0, "alpha", self.alpha, "> 0")
        _require(0 <= self.p <= 1, "p", self.p, "in [0, 1]")
        _require(0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "in [0, 1) (0 = no hold-out)")
        _require(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "in [0, 1)")
        _require(self.lr > 0, "lr", self.lr, "> 0")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _require(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        _require(0 <= self.warmup_epochs < self.epochs, "warmup_epochs", self.warmup_epochs, "in [0, epochs)")
        _require(self.auxiliary_weight >= 0, "auxiliary_weight", self.auxiliary_weight, ">= 0")
        _require(0 <= self.drop_path < 1, "drop_path", self.drop_path, "in [0, 1)")
        _require(self.grad_clip >= 0, "grad_clip", self.grad_clip, ">= 0 (0 = off)")
        _int("cutout", self.cutout)
        _require(self.cutout >= 0, "cutout", self.cutout, ">= 0 pixels (0 = off)")
        _require(isinstance(self.milestones, (list, tuple)) and all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in self.milestones),
            "milestones", self.milestones, "a list of positive epoch numbers", TypeError)
        self.milestones = sorted(self.milestones)
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule 'step' needs milestones (epochs at which lr is multiplied by gamma)")
        _require(isinstance(self.model_kwargs, dict), "model_kwargs", self.model_kwargs, "a mapping", TypeError)
        for name in ("nesterov", "download", "augment", "check_images", "eval_on_train", "resume", "channels_last",
                     "record_dynamics", "tensorboard", "plot", "quiet"):
            _require(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false", TypeError)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true needs momentum > 0")
        if self.mix in ("mixup", "cutmix"):
            self.k = 2  # Mixup and CutMix are the K=2 cases; use dmixup/dcutmix for K > 2
        return self

    # --- conversion ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        """Build from a mapping; keys may use '-' or '_'; unknown keys raise a ValueError naming them."""
        return cls(**_known_keys(values, source))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes` applied (validated)."""
        return TrainConfig(**{**self.to_dict(), **changes})


def _known_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    clean = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(clean) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    return clean


def load_recipe(path: str | os.PathLike, **overrides: Any) -> TrainConfig:
    """Read a YAML recipe into a TrainConfig; `overrides` (e.g. CLI flags that were given) win."""
    return TrainConfig(**{**recipe_values(path), **_known_keys(overrides, "overrides")})


def recipe_values(path: str | os.PathLike) -> dict[str, Any]:
    """The validated-key mapping of a YAML recipe (without building a config)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"recipe {path} is not valid YAML: {err}") from err
    return _known_keys(values, f"recipe {path}")


def default_values() -> dict[str, Any]:
    """Field name -> default value of TrainConfig."""
    out = {}
    for f in fields(TrainConfig):
        out[f.name] = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return out


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def _require(ok: bool, name: str, value: Any, what: str, exc: type[Exception] = ValueError) -> None:
    if not ok:
        raise exc(f"{name} must be {what}, got {value!r}")


def _int(name: str, value: Any) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool), name, value, "an integer", TypeError)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
