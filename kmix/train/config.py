"""`TrainConfig`: every knob of a training run, filled from defaults, a YAML recipe and CLI flags."""
from __future__ import annotations

import math
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from kmix.io import write_text_atomic
from kmix.mix.baselines import MODES as MIX_MODES
from kmix.mix.registry import MIX_NAMES, MIX_VERSION, MIXER_REGISTRY
from kmix.mix.sampling import PARTNERS
from kmix.options import data_option, data_root_option, device_option, option, quiet_option

SCHEDULES = ("step", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
LOADERS = ("auto", "device", "workers")

AUTO_PREPARE_STEPS = 16  # prepare_steps' auto value on CUDA (fewer when the steps' float images exceed 256 MiB)
# fields a resumed run must share with the run it continues (the others may change, e.g. epochs)
RUN_DEFINING = ("data", "model", "mix", "mix_version", "mix_mode", "partners", "k", "alpha", "p", "batch_size", "seed", "subset", "image_size",
                "model_kwargs", "genotype", "label_smoothing", "lr", "momentum", "nesterov", "weight_decay",
                "schedule", "milestones", "gamma", "warmup_epochs", "limit_train_batches", "grad_clip", "cutout",
                "val_fraction", "eval_on_train", "auxiliary_weight", "drop_path", "keep_last_batch", "norm_mean",
                "norm_std")


@dataclass
class TrainConfig:
    """One training run. Defaults are the quick-start: small CNN + DCutMix (K=5, alpha=0.2) on digits, ~1 min on 2 CPU cores."""

    # what to train on what
    data: str = data_option()
    data_root: str | None = data_root_option()
    download: bool = option(False, "download CIFAR if missing")
    augment: bool = option(True, "the dataset's standard train augmentation (random crop/flip)")
    norm_mean: list[float] | None = option(None, "per-channel mean the model subtracts from its [0, 1] input, e.g. "
                                                 "0.4914 0.4822 0.4465 (the official DCutMix code's, for CIFAR-10 "
                                                 "and CIFAR-100 alike)", default_text="the dataset's own",
                                           metavar="M")
    norm_std: list[float] | None = option(None, "per-channel std the model divides by after that, e.g. 0.2023 0.1994 "
                                                "0.2010", default_text="the dataset's own",
                                          metavar="S")
    check_images: bool = option(False, "decode every ImageFolder image before training; fail naming unreadable files")
    image_size: int | None = option(None, "resize/crop size for ImageFolder data")
    subset: str | list[int] | None = option(None, "JSON index file (from `kmix subsample`) restricting the training set")
    val_fraction: float = option(0.0, "hold out this seeded per-class fraction of the training set and evaluate on "
                                      "it (split 'val'); 0 = no hold-out")
    eval_on_train: bool = option(False, "evaluate on the training images (summary keys then start with train_)")
    eval_every: int = option(1, "evaluate every N epochs; the last epoch always")
    loader: str = option("auto", "device: uint8 set on the training device, batched augmentation; workers: "
                                 "DataLoader; auto: device when the set fits in half the free memory", choices=LOADERS)
    prepare_steps: int | None = option(None, "device pipeline: augment and mix this many steps' batches in one call "
                                             "(mixing partners then come from those steps' images); cuts the per-step "
                                             "host overhead that bounds small models on a GPU. Default (auto): "
                                             f"up to {AUTO_PREPARE_STEPS} on CUDA when p = 1, else 1 (one batch per call)")
    model: str = option("small_cnn", "registry name, tv:NAME or timm:NAME")
    model_kwargs: dict[str, Any] = option({}, "extra model builder arguments", cli=False)
    genotype: str | dict | None = option(None, "genotype JSON for --model darts (from `kmix search`)")
    # mixing
    mix: str = option("dcutmix", "mixer: mixup/cutmix are the field's two-image methods (Zhang et al.; Yun et al., "
                                 "box clipped at the border); dmixup/dcutmix/saliency-dcutmix mix K images "
                                 "(dcutmix --k 2 is the paper's K=2 case, box inside)", choices=MIX_NAMES)
    mix_version: int = option(MIX_VERSION, "mixer definitions the run used (2: mixup/cutmix are the field's; run "
                                           "records without it are version 1 and are read as dmixup/dcutmix K=2)",
                              cli=False)
    mix_mode: str = option("batch", "mixup/cutmix: one lambda (and box) per batch, as Yun et al., timm and "
                                    "torchvision, or one per sample (elem)", choices=MIX_MODES)
    partners: str = option("derangement", "dmixup/dcutmix/saliency-dcutmix partners: random permutations without "
                                          "fixed points (derangement) or plain ones, as the official DCutMix code "
                                          "(permutation: a slot may hold the anchor itself)", choices=PARTNERS)
    k: int = option(5, "images mixed per sample, dmixup/dcutmix (mixup and cutmix are K=2)")
    alpha: float = option(0.2, "Dirichlet concentration (dmixup/dcutmix), Beta(alpha, alpha) for mixup/cutmix; "
                               "e.g. 0.2 or 1/3")
    p: float = option(1.0, "probability of mixing a batch")
    label_smoothing: float = option(0.0, "label smoothing of the targets")
    # optimisation
    epochs: int = option(15, "training epochs")
    batch_size: int = option(64, "global batch, split over torchrun processes")
    keep_last_batch: bool = option(False, "also train on each epoch's last partial batch, ceil(N / batch_size) steps "
                                          "as a DataLoader with drop_last=False (one process only; a last batch of "
                                          "1 image is refused)")
    lr: float = option(0.1, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum", negatable=True)
    weight_decay: float = option(5e-4, "SGD weight decay")
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    milestones: list[int] = option([], "epochs where a step schedule multiplies lr by --gamma")
    gamma: float = option(0.1, "step schedule factor")
    warmup_epochs: float = option(0.0, "linear warm-up epochs")
    auxiliary_weight: float = option(0.0, "weight of auxiliary logits (models returning (logits, aux))")
    drop_path: float = option(0.0, "final drop-path probability (models with drop_path_prob)")
    grad_clip: float = option(0.0, "clip the global gradient norm to this value, 0 = off (DARTS evaluation uses 5)")
    cutout: int = option(0, "Cutout: zero a random square of this side per image, 0 = off (DARTS evaluation uses 16)")
    # run
    seed: int = option(0, "seed of the run")
    out: str | None = option(None, "output folder", default_text="runs/<data>-<model>-<mix>-<time>")
    resume: bool = option(False, "continue from OUT/last.pt (settings from OUT/config.yaml)")
    device: str = device_option()
    workers: int = option(0, "data-loading processes")
    threads: int | None = option(None, "CPU threads for torch (1 is often fastest on a busy machine)")
    amp: str = option("none", "mixed precision (fp16 needs CUDA)", choices=AMP_MODES)
    channels_last: bool = option(False, "channels-last memory format")
    compile: bool = option(False, "torch.compile the training forward/backward (once per run, tens of seconds; "
                                  "resume with the same setting for bit-exact replay)")
    ckpt_every_steps: int = option(0, "also checkpoint every N steps, 0 = per epoch only")
    limit_train_batches: int | None = option(None, "cap steps per epoch (smoke tests)")
    record_dynamics: bool = option(False, "record each training image's loss, logit margin and correctness every "
                                          "epoch (OUT/dynamics.pt, also in last.pt so resume continues them) for "
                                          "kmix score --method forgetting|aum|dyn-unc --run OUT; a mixing run adds an "
                                          "eval-mode forward pass per step on the unmixed batch")
    tensorboard: bool = option(True, "write TensorBoard event files into OUT")
    plot: bool = option(True, "write OUT/curves.png (loss and error per epoch)")
    quiet: bool = quiet_option()

    def __post_init__(self) -> None:
        self.validate()
        self.normalise()

    def validate(self) -> "TrainConfig":
        """Check every field, changing none; raise ValueError/TypeError naming the field and the bad value."""
        for name in ("data", "model", "mix", "schedule", "device", "amp"):
            _require(isinstance(getattr(self, name), str) and getattr(self, name), name, getattr(self, name),
                     "a non-empty string", TypeError)
        _choice("mix", self.mix, MIX_NAMES)
        _choice("mix_mode", self.mix_mode, MIX_MODES)
        _choice("partners", self.partners, PARTNERS)
        if self.mix_version != MIX_VERSION:
            raise ValueError(f"mix_version must be {MIX_VERSION} (the mixers this kmix defines), got {self.mix_version!r}; "
                             "a run record of version 1 is read with upgrade_run_config (its mixup/cutmix were "
                             "dmixup/dcutmix with k 2)")
        entry = MIXER_REGISTRY[self.mix]
        if self.mix_mode != "batch" and not entry.two_image:
            raise ValueError(f"mix_mode {self.mix_mode!r} applies to mixup and cutmix only, not to mix {self.mix!r}")
        if self.partners != "derangement" and (entry.cls is None or entry.two_image):
            raise ValueError(f"partners {self.partners!r} applies to dmixup, dcutmix and saliency-dcutmix only (mixup and "
                             f"cutmix pair each batch by one random permutation), not to mix {self.mix!r}")
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
        if self.prepare_steps is not None:
            _int("prepare_steps", self.prepare_steps)
            _require(self.prepare_steps >= 1, "prepare_steps", self.prepare_steps, ">= 1 or null (auto)")
            _require(self.prepare_steps == 1 or self.p == 1, "prepare_steps", self.prepare_steps,
                     "1 when p < 1 (the mixing coin is tossed per batch)")
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
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule 'step' needs milestones (epochs at which lr is multiplied by gamma)")
        late = [m for m in self.milestones if m >= self.epochs]
        if self.schedule == "step" and late:  # e.g. a recipe's milestones kept with a shorter --epochs
            raise ValueError(f"milestones {sorted(self.milestones)} are not all below epochs={self.epochs}: {late} would "
                             f"never lower the lr; pass milestones for this schedule or --schedule cosine")
        for name in ("norm_mean", "norm_std"):
            value = getattr(self, name)
            _require(value is None or (isinstance(value, (list, tuple)) and len(value) >= 1 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)),
                name, value, "a list of finite numbers, one per image channel, or null (the dataset's own)")
        if self.norm_std is not None:
            _require(all(v > 0 for v in self.norm_std), "norm_std", self.norm_std, "> 0 in every channel")
        if self.norm_mean is not None and self.norm_std is not None and len(self.norm_mean) != len(self.norm_std):
            raise ValueError(f"norm_mean and norm_std must have one value per channel each, got {len(self.norm_mean)} "
                             f"and {len(self.norm_std)} values")
        _require(isinstance(self.model_kwargs, dict), "model_kwargs", self.model_kwargs, "a mapping", TypeError)
        for name in ("nesterov", "download", "augment", "check_images", "eval_on_train", "resume", "channels_last",
                     "compile", "record_dynamics", "tensorboard", "plot", "quiet", "keep_last_batch"):
            _require(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false", TypeError)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true needs momentum > 0")
        return self

    def normalise(self) -> "TrainConfig":
        """The canonical form of valid values (run after `validate`): milestones sorted; K from the mixer where it
        fixes one (Mixup and CutMix are the K=2 cases; dmixup/dcutmix take K > 2)."""
        self.milestones = sorted(self.milestones)
        for name in ("norm_mean", "norm_std"):  # plain float lists: equal in config.yaml, checkpoints and resume checks
            if getattr(self, name) is not None:
                setattr(self, name, [float(v) for v in getattr(self, name)])
        fixed_k = MIXER_REGISTRY[self.mix].fixed_k
        if fixed_k is not None:
            self.k = fixed_k
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


# mix names of run records written before MIX_VERSION 2 -> (today's name, K): the paper's K=2 cases
_VERSION_1_MIXERS = {"mixup": ("dmixup", 2), "cutmix": ("dcutmix", 2)}
_VERSION_1_BEHAVIOUR = {"mix_mode": "batch", "partners": "derangement", "keep_last_batch": False, "norm_mean": None,
                        "norm_std": None}


def upgrade_run_config(values: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config (config.yaml, a checkpoint's config) in today's terms: a record without
    `mix_version` was written when `mixup`/`cutmix` meant DMixup/DCutMix with K=2, so it is renamed to
    those (never pooled with, or resumed as, the field's Mixup/CutMix). Recipes are not run records:
    they are read as written."""
    if not isinstance(values, dict) or "mix_version" in values:
        return values
    out = dict(values)
    if out.get("mix") in _VERSION_1_MIXERS:
        out["mix"], out["k"] = _VERSION_1_MIXERS[out["mix"]]
    out["mix_version"] = MIX_VERSION
    for name, then in _VERSION_1_BEHAVIOUR.items():  # fields added with version 2, at what version 1 did
        out.setdefault(name, then)
    return out


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
