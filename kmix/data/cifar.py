"""CIFAR-10/100 through torchvision's loaders, served as float [0, 1] tensors (3, 32, 32).

Files are checked for presence (with a clear error that names the root and `--download`) rather than
by MD5 on every start: torchvision verifies the archive's MD5 when it downloads it.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from kmix.data.info import DatasetInfo
from kmix.data.transforms import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, CIFAR_SIZE, cifar_transform

_TORCHVISION_CLASSES = {"cifar10": CIFAR10, "cifar100": CIFAR100}
_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}


def cifar_files(name: str, root: str | os.PathLike) -> list[Path]:
    """Paths of every file torchvision's loader reads for `name` ('cifar10' or 'cifar100') under `root`."""
    base = _TORCHVISION_CLASSES[name]
    folder = Path(root) / base.base_folder
    names = [f for f, _ in base.train_list + base.test_list] + [base.meta["filename"]]
    return [folder / f for f in names]


def _require_files(name: str, root: Path) -> None:
    missing = [p for p in cifar_files(name, root) if not p.is_file()]
    if missing:
        shown = ", ".join(str(p.relative_to(root)) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise FileNotFoundError(
            f"{name} not found under root {str(root)!r} (missing {shown}); pass --download "
            f"(download=True) to fetch it, or point --data-root at the folder holding "
            f"{_TORCHVISION_CLASSES[name].base_folder}/"
        )


class _TensorCifar:
    """Mixin over torchvision's CIFAR reader: float [0, 1] tensor items, files checked by presence."""

    kmix_name = ""

    def __init__(self, root: Path, *, train: bool, augment: bool, download: bool):
        try:
            super().__init__(str(root), train=train, transform=None, download=download)  # type: ignore[call-arg]
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"{self.kmix_name} files under {root} are corrupt or not CIFAR pickles: {err!r}") from err
        n = len(self.data)
        if self.data.shape[1:] != (CIFAR_SIZE, CIFAR_SIZE, 3) or len(self.targets) != n:
            raise ValueError(f"{self.kmix_name} files under {root}: {n} images vs {len(self.targets)} labels")
        self.targets = [int(t) for t in self.targets]
        if self.targets and not 0 <= min(self.targets) <= max(self.targets) < len(self.classes):
            raise ValueError(f"{self.kmix_name} files under {root}: labels outside [0, {len(self.classes)})")
        self.augment = augment
        self.images = torch.from_numpy(self.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8, no PIL
        self.image_transform = cifar_transform(augment)

    def _check_integrity(self) -> bool:  # presence only; torchvision checks the archive MD5 on download
        return all(p.is_file() for p in cifar_files(self.kmix_name, self.root))

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            meta = pickle.load(f, encoding="latin1")
        self.classes = [str(c) for c in meta[self.meta["key"]]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image_transform(self.images[index]), self.targets[index]


class KmixCIFAR10(_TensorCifar, CIFAR10):
    """CIFAR-10 (`cifar-10-batches-py/`) as float (3, 32, 32) tensors in [0, 1]."""

    kmix_name = "cifar10"


class KmixCIFAR100(_TensorCifar, CIFAR100):
    """CIFAR-100 (`cifar-100-python/`, fine labels) as float (3, 32, 32) tensors in [0, 1]."""

    kmix_name = "cifar100"


_KMIX_CLASSES = {"cifar10": KmixCIFAR10, "cifar100": KmixCIFAR100}


def build_cifar(name: str, root: str | os.PathLike, *, train: bool = True, augment: bool = False,
                download: bool = False) -> tuple[torch.utils.data.Dataset, DatasetInfo]:
    """Return (dataset, info) for 'cifar10'/'cifar100'; `augment` = random crop (pad 4) + flip."""
    if name not in _KMIX_CLASSES:
        raise ValueError(f"unknown CIFAR dataset {name!r}: use cifar10 or cifar100")
    root = Path(root).expanduser()
    if not download:
        _require_files(name, root)
    try:
        dataset = _KMIX_CLASSES[name](root, train=train, augment=augment, download=download)
    except OSError as err:  # download=True without network, a failed MD5, a full disk
        if isinstance(err, FileNotFoundError):
            raise
        raise FileNotFoundError(f"{name} is not under root {str(root)!r} and downloading it failed: {err}") from err
    mean, std = _STATS[name]
    info = DatasetInfo(
        name=name, num_classes=len(dataset.classes), in_chans=3, input_size=CIFAR_SIZE,
        mean=mean, std=std, class_names=tuple(dataset.classes),
    )
    expected = 10 if name == "cifar10" else 100
    if info.num_classes != expected:
        raise ValueError(f"{name} meta file under {root} lists {info.num_classes} classes, expected {expected}")
    return dataset, info
