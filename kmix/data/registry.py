"""`build_dataset(spec)`: 'digits', 'cifar10', 'cifar100' or a path to an ImageFolder tree."""
from __future__ import annotations

import os
from typing import Sequence

from torch.utils.data import Dataset

from kmix.data.info import DatasetInfo

DATASET_NAMES = ("digits", "cifar10", "cifar100")
DEFAULT_CIFAR_ROOT = "data"


def build_dataset(spec: str = "digits", *, root: str | None = None, train: bool = True,
                  augment: bool = False, download: bool = False, image_size: int | None = None,
                  classes: Sequence[str] | str | os.PathLike | None = None, cached: bool = False,
                  quiet: bool = True) -> tuple[Dataset, DatasetInfo]:
    """Return (dataset, info). Items are (float tensor (C, H, W) in [0, 1], int label); `.targets` lists labels.

    `spec`: 'digits' (embedded), 'cifar10'/'cifar100' (files under `root`, default ./data; `download`
    fetches them; `root` may also be a JPEG tree train/<class>/, test/<class>/ or its .tar.gz, decoded
    once into the uint8 cache) or an ImageFolder path (`image_size`, default 224; `classes` restricts
    to a list of class folders or a one-per-line file of them; `cached` decodes it once at that size
    into the cache). `quiet=False` shows a progress bar while a source is decoded.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"dataset spec must be a name or a path, got {type(spec).__name__}")
    spec = os.fspath(spec)
    if spec in DATASET_NAMES and classes is not None:
        raise ValueError(f"classes= restricts ImageFolder datasets only, not {spec!r}")
    if spec == "digits":
        from kmix.data.digits import DIGITS_INFO, DigitsDataset

        return DigitsDataset(train=train), DIGITS_INFO
    if spec in ("cifar10", "cifar100"):
        from kmix.data.cifar import build_cifar

        if image_size not in (None, 32):
            raise ValueError(f"{spec} images are 32x32; image_size={image_size!r} is not supported")
        return build_cifar(spec, DEFAULT_CIFAR_ROOT if root is None else root,
                           train=train, augment=augment, download=download, quiet=quiet)
    if os.sep in spec or "/" in spec or os.path.exists(spec):
        from kmix.data.imagefolder import build_imagefolder

        return build_imagefolder(spec, train=train, augment=augment, image_size=image_size, classes=classes,
                                 cached=cached, quiet=quiet)
    raise ValueError(
        f"unknown dataset {spec!r}: use {', '.join(DATASET_NAMES)} or a path to an ImageFolder directory"
    )
