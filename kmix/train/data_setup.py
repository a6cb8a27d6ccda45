"""The data side of a training run: what is trained on, what is evaluated (and named so), and by which
pipeline — the device-resident one or DataLoader workers.

Evaluation can't lie: an ImageFolder path with no held-out split is refused unless the run makes a
seeded hold-out (`val_fraction`) or explicitly evaluates on its training images (`eval_on_train`),
and every summary records `eval_split` and `eval_images`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from kmix.data.device_loader import DeviceLoader
from kmix.data.info import DatasetInfo
from kmix.data.order import check_keep_last
from kmix.data.provenance import data_provenance
from kmix.runs import Stream, generator_for
from kmix.data.registry import DATASET_NAMES, build_dataset
from kmix.data.subset import load_indices, subset_dataset
from kmix.train.config import AUTO_PREPARE_STEPS, TrainConfig

VAL_SPLIT_SEED = 0  # the --val-fraction hold-out is the same for every training seed (comparable runs)
PREPARE_BYTES = 256 * 2**20  # auto prepare_steps keeps one call's float images under this
MEMORY_SHARE = 0.5  # `loader: auto` keeps a set on the device when it takes at most this share of free memory


@dataclass
class TrainData:
    """Everything the loop reads about data; `train_loader`/`eval_loader` are set for the device pipeline."""

    info: DatasetInfo
    train_set: Dataset
    eval_set: Dataset
    eval_split: str  # 'test', 'val' or 'train'
    loader: str  # 'device' or 'workers'
    train_indices: list[int] | None  # into the full training set; None = all of it
    val_indices: list[int] | None
    full_targets: list[int]  # the labels of the full training set (what train_indices index)
    provenance: dict[str, Any]  # what the training data is (kmix.data.provenance), recorded in checkpoints
    train_loader: DeviceLoader | None = None
    eval_loader: DeviceLoader | None = None

    @property
    def full_train_size(self) -> int:
        """Images in the full training set (a subset's or hold-out's indices point into it)."""
        return len(self.full_targets)

    @property
    def eval_images(self) -> int:
        return len(self.eval_set)  # type: ignore[arg-type]

    def record(self) -> dict[str, Any]:
        """What the run folder records about its data."""
        return {"eval_split": self.eval_split, "eval_images": self.eval_images, "loader": self.loader,
                "train_images": len(self.train_set)}  # type: ignore[arg-type]


def is_imagefolder(spec: str) -> bool:
    return spec not in DATASET_NAMES


def check_eval_split(config: TrainConfig) -> None:
    """Refuse, before any work, an ImageFolder path whose evaluation would silently use training images."""
    if config.val_fraction > 0 and config.eval_on_train:
        raise ValueError("val_fraction and eval_on_train exclude each other: evaluate on a hold-out or on "
                         "the training images, not both")
    if config.val_fraction > 0 or config.eval_on_train or not is_imagefolder(config.data):
        return
    from kmix.data.imagefolder import EVAL_DIRS, has_holdout

    if not has_holdout(config.data):
        raise ValueError(
            f"{config.data} has no held-out split ({'/, '.join(EVAL_DIRS)}/ beside train/), so evaluation would "
            f"use the training images. Make one with kmix.data.imagefolder.split_imagefolder("
            f"{config.data!r}, 'NEW_DIR') and pass NEW_DIR, or pass --val-fraction F for a seeded hold-out of this "
            f"run, or --eval-on-train to evaluate on training images knowingly")


def stratified_holdout(targets: list[int], fraction: float, seed: int = VAL_SPLIT_SEED) -> list[int]:
    """A seeded per-class hold-out: round(fraction * n_c) items of each class c (at least 1 if n_c > 1), sorted."""
    labels = torch.as_tensor(targets)
    gen = generator_for(Stream.VAL_SPLIT, seed)
    held: list[int] = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        take = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held += members[torch.randperm(len(members), generator=gen)[:take]].tolist()
    return sorted(held)


def free_memory(device: torch.device) -> int:
    """Bytes free on `device` (GPU memory for CUDA, available RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def choose_loader(config: TrainConfig, device: torch.device) -> str:
    """'device' or 'workers' for config.loader ('auto' = device when the uint8 set fits in half the free memory)."""
    if config.loader == "workers":
        return "workers"
    if config.data == "digits":  # float data with no uint8 form: the worker path only
        if config.loader == "device":
            raise ValueError("loader 'device' needs uint8 image data (cifar10, cifar100 or an ImageFolder); "
                             "digits uses --loader workers")
        return "workers"
    if config.loader == "device":
        return "device"
    if is_imagefolder(config.data):
        from kmix.data.imagefolder import train_split_bytes

        need = train_split_bytes(config.data, config.image_size)
    else:
        need = 50_000 * 32 * 32 * 3
    return "device" if need <= MEMORY_SHARE * free_memory(device) else "workers"


def resolve_prepare_steps(config: TrainConfig, data: TrainData, device: torch.device) -> int:
    """Steps whose batches the device pipeline prepares in one call: config.prepare_steps, or when unset
    (auto) up to AUTO_PREPARE_STEPS on CUDA with p = 1, as many as keep the float images under
    PREPARE_BYTES; 1 otherwise (the CPU's arithmetic dwarfs the per-call overhead; the worker
    pipeline yields one batch at a time; a p < 1 coin is tossed per batch)."""
    if data.loader != "device":
        if config.prepare_steps not in (None, 1):
            raise ValueError(f"prepare_steps {config.prepare_steps} needs the device pipeline (--loader device); "
                             f"this run uses the {data.loader} pipeline")
        return 1
    if config.prepare_steps is not None:
        return config.prepare_steps
    if device.type != "cuda" or config.p < 1:
        return 1
    loader = data.train_loader
    batch_bytes = (config.batch_size // loader.world) * loader.images[0].numel() * 4  # type: ignore[union-attr]
    return max(1, min(AUTO_PREPARE_STEPS, PREPARE_BYTES // batch_bytes))


def build_train_data(config: TrainConfig, device: torch.device, *, rank: int = 0, world: int = 1,
                     quiet: bool = True, loader: str | None = None) -> TrainData:
    """Build the training and evaluation sets and, for the device pipeline, their loaders: the training loop's
    one entry into kmix.data. Every check of the data (hold-out rules, --check-images, subset files,
    keep_last_batch under several processes) fails here, before any training.

    `loader` forces the pipeline (a resumed run keeps the one it started with)."""
    check_keep_last(config.keep_last_batch, world)
    check_eval_split(config)
    if config.check_images:
        if not is_imagefolder(config.data):
            raise ValueError(f"check_images applies to ImageFolder data, not {config.data!r}")
        from kmix.data.imagefolder import check_all_images

        check_all_images(config.data, ("train",) if config.val_fraction > 0 or config.eval_on_train
                         else ("train", "test"), quiet=quiet)
    loader = loader or choose_loader(config, device)
    common = dict(root=config.data_root, download=config.download, image_size=config.image_size,
                  cached=loader == "device", quiet=quiet)
    train_set, info = build_dataset(config.data, train=True, augment=config.augment, **common)
    if loader == "device" and not hasattr(train_set, "arrays"):
        raise ValueError(f"loader 'device' cannot hold {config.data!r} on the device; use --loader workers")
    full_n = len(train_set)  # type: ignore[arg-type]
    targets = list(train_set.targets)  # type: ignore[attr-defined]
    train_indices = None
    provenance = data_provenance(config.data, info, full_n, config.data_root)
    if config.subset is not None:  # checked against the data it was made from (size, classes, files' fingerprint)
        train_indices = load_indices(config.subset, full_n, classes=info.class_names,
                                     fingerprint=provenance["fingerprint"])
    val_indices = None
    if config.eval_on_train or config.val_fraction > 0:
        plain, _ = build_dataset(config.data, train=True, augment=False, **common)
        if config.val_fraction > 0:
            val_indices = stratified_holdout(targets, config.val_fraction)
            held = set(val_indices)
            if train_indices is not None:
                overlap = [i for i in train_indices if i in held]
                if overlap:
                    raise ValueError(f"subset and the val_fraction={config.val_fraction} hold-out share "
                                     f"{len(overlap)} image(s) (e.g. index {overlap[0]}); subsample from "
                                     f"the training part or drop --val-fraction")
            else:
                train_indices = [i for i in range(full_n) if i not in held]
            eval_set, eval_split = subset_dataset(plain, val_indices), "val"
        else:
            eval_set = plain if train_indices is None else subset_dataset(plain, train_indices)
            eval_split = "train"
    else:
        eval_set, _ = build_dataset(config.data, train=False, augment=False, **common)
        eval_split = eval_split_name(config.data)
        _check_same_classes(info, eval_set, config)
        if hasattr(eval_set, "samples") and not config.check_images:  # read lazily: check it before epoch 1
            from kmix.data.imagefolder import check_readable_once

            check_readable_once(eval_set, f"the {eval_split} split of {config.data}", quiet=quiet)
    if train_indices is not None:
        if not train_indices:
            raise ValueError(f"the training subset is empty ({config.subset if isinstance(config.subset, str) else 'subset'})")
        train_set = subset_dataset(train_set, train_indices)
    data = TrainData(info, train_set, eval_set, eval_split, loader, train_indices, val_indices, targets, provenance)
    if loader == "device":
        base = train_set.dataset if train_indices is not None else train_set  # type: ignore[attr-defined]
        data.train_loader = DeviceLoader(
            base.arrays, device=device, batch_size=config.batch_size, seed=config.seed, indices=train_indices,
            augment=base.device_augment, rank=rank, world=world, channels_last=config.channels_last,
            limit_batches=config.limit_train_batches, keep_last=config.keep_last_batch)
        data.eval_loader = _eval_loader(eval_set, device, rank, world, config.channels_last)
    return data


def _eval_loader(eval_set: Dataset, device, rank, world, channels_last) -> DeviceLoader | None:
    base, indices = (eval_set.dataset, eval_set.indices) if hasattr(eval_set, "indices") else (eval_set, None)
    if not hasattr(base, "arrays"):
        return None
    return DeviceLoader(base.arrays, device=device, batch_size=world, seed=0, indices=indices, rank=rank,
                        world=world, channels_last=channels_last)


def eval_split_name(data: str) -> str:
    """'test' for the built-in sets and an ImageFolder's test/ folder; 'val' for its val/ or validation/."""
    if is_imagefolder(data):
        from kmix.data.imagefolder import resolve_split_dir

        return "test" if resolve_split_dir(data, train=False).name == "test" else "val"
    return "test"


def _check_same_classes(info: DatasetInfo, eval_set: Dataset, config: TrainConfig) -> None:
    classes = getattr(eval_set, "classes", None)
    if classes is not None and tuple(classes) != tuple(info.class_names):
        raise ValueError(f"{config.data}: the evaluation split's classes {list(classes)[:5]} differ from the "
                         f"training split's {list(info.class_names)[:5]}; labels would not match")
