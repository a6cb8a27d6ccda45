"""CIFAR-10/100 from what users have, served as float [0, 1] tensors (3, 32, 32).

Three sources under `root`: torchvision's pickle folder (`cifar-10-batches-py/`), a JPEG tree
(`train/<class>/`, `test/<class>/`) or the `.tar.gz` of that tree, read directly. JPEG sources are
decoded once into the uint8 cache (`kmix.data.cache`); labels always follow CIFAR's official class
order. Pickle files are checked for presence (with a clear error that names the root and
`--download`) rather than by MD5 on every start: torchvision verifies the MD5 when it downloads.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from kmix.data.arrays import ArrayDataset
from kmix.data.cache import ImageArrays, cached, decode_archive, decode_tree, fingerprint, is_archive
from kmix.data.info import DatasetInfo, class_index
from kmix.data.transforms import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, CIFAR_SIZE, cifar_transform

_TORCHVISION_CLASSES = {"cifar10": CIFAR10, "cifar100": CIFAR100}
# the official label order (batches.meta); JPEG trees are mapped onto it by folder name
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}
# images per class in the official splits (CIFAR-10: 50,000 train + 10,000 test; CIFAR-100: the same over 100)
_PER_CLASS = {"cifar10": {"train": 5000, "test": 1000}, "cifar100": {"train": 500, "test": 100}}


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
            f"{name} not found under root {str(root)!r} (missing {shown}); fetch it once with "
            f"`kmix train --data {name} --data-root {root} --download` (or download=True), or point --data-root at the folder holding "
            f"{_TORCHVISION_CLASSES[name].base_folder}/, a JPEG tree with train/<class>/ and test/<class>/, "
            f"or the .tar.gz of such a tree"
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
        self.device_augment = "crop_flip" if augment else None

    @property
    def arrays(self) -> ImageArrays:
        """The split as uint8 (N, 32, 32, 3) + labels, for the device pipeline."""
        return ImageArrays(torch.from_numpy(self.data), torch.tensor(self.targets, dtype=torch.int64),
                           tuple(self.classes), str(self.root), "")

    def _check_integrity(self) -> bool:  # presence only; torchvision checks the archive MD5 on download
        return all(p.is_file() for p in cifar_files(self.kmix_name, self.root))

    def _load_meta(self) -> None:
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            meta = pickle.load(f, encoding="latin1")
        self.classes = [str(c) for c in meta[self.meta["key"]]]
        self.class_to_idx = class_index(self.classes)

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
                download: bool = False, quiet: bool = False) -> tuple[torch.utils.data.Dataset, DatasetInfo]:
    """Return (dataset, info) for 'cifar10'/'cifar100' from a pickle folder, a JPEG tree or its .tar.gz;
    `augment` = random crop (pad 4) + flip."""
    if name not in _KMIX_CLASSES:
        raise ValueError(f"unknown CIFAR dataset {name!r}: use cifar10 or cifar100")
    root = Path(root).expanduser()
    if is_archive(root) or (root / "train").is_dir():
        arrays = cifar_jpeg_arrays(name, root, train=train, quiet=quiet)
        dataset = ArrayDataset(arrays, cifar_transform(augment), "crop_flip" if augment else None)
        return dataset, _info(name, arrays.classes)
    if not download:
        _require_files(name, root)
    try:
        dataset = _KMIX_CLASSES[name](root, train=train, augment=augment, download=download)
    except OSError as err:  # download=True without network, a failed MD5, a full disk
        if isinstance(err, FileNotFoundError):
            raise
        raise FileNotFoundError(f"{name} is not under root {str(root)!r} and downloading it failed: {err}") from err
    if len(dataset.classes) != _NUM_CLASSES[name]:
        raise ValueError(f"{name} meta file under {root} lists {len(dataset.classes)} classes, "
                         f"expected {_NUM_CLASSES[name]}")
    return dataset, _info(name, dataset.classes)


def _info(name: str, classes) -> DatasetInfo:
    mean, std = _STATS[name]
    return DatasetInfo(name=name, num_classes=len(classes), in_chans=3, input_size=CIFAR_SIZE,
                       mean=mean, std=std, class_names=tuple(classes))


def cifar_jpeg_arrays(name: str, root: str | os.PathLike, *, train: bool, quiet: bool = False) -> ImageArrays:
    """The train or test split of a CIFAR JPEG tree or its .tar.gz, decoded once and cached.

    CIFAR-10 folders must be the ten official class names (mapped to the official order);
    CIFAR-100 folders are the 100 fine-label names (official order = sorted)."""
    root = Path(root).expanduser().resolve()
    classes = CIFAR10_CLASSES if name == "cifar10" else None
    if is_archive(root):
        decode = lambda: decode_archive(root, classes=classes, quiet=quiet)  # noqa: E731
    else:
        decode = lambda: {s: decode_tree(root / s, classes=classes, quiet=quiet)  # noqa: E731
                          for s in ("train", "test") if (root / s).is_dir()}

    def build() -> dict[str, ImageArrays]:  # checked before anything is cached
        splits = decode()
        for split, decoded in splits.items():
            _check_counts(name, root, split, decoded)
        return splits

    arrays = cached({"source": str(root), "dataset": name, "classes": list(classes or [])}, fingerprint(root),
                    build, "train" if train else "test", quiet=quiet)
    _check_counts(name, root, "train" if train else "test", arrays)  # a cache written before this check
    if len(arrays.classes) != _NUM_CLASSES[name]:
        raise ValueError(f"{name} at {root}: {len(arrays.classes)} class folders, expected {_NUM_CLASSES[name]}")
    if len(arrays) and tuple(arrays.images.shape[1:]) != (CIFAR_SIZE, CIFAR_SIZE, 3):
        raise ValueError(f"{name} at {root}: images are {tuple(arrays.images.shape[1:3])}, expected 32x32")
    return arrays


def _check_counts(name: str, root: Path, split: str, arrays: ImageArrays) -> None:
    """A CIFAR source holds the same number of images in every class, at most the official number (5,000
    train / 1,000 test per CIFAR-10 class): fewer, evenly, is a sample (tests' tiny trees); an uneven or
    larger split is a damaged source, or images merged in from elsewhere, and is refused."""
    official = _PER_CLASS[name].get(split)
    if official is None or not len(arrays):
        return
    counts = torch.bincount(arrays.labels, minlength=len(arrays.classes)).tolist()
    low, high = min(counts), max(counts)
    if low == high <= official:
        return
    fewest, most = arrays.classes[counts.index(low)], arrays.classes[counts.index(high)]
    why = ("more than the official" if high > official else "uneven; the official split has")
    raise ValueError(f"{name} at {root}: {split}/ holds {len(arrays):,} images, {low:,} ({fewest}) to {high:,} "
                     f"({most}) per class, {why} {official:,} per class ({official * len(counts):,}): "
                     f"a damaged source or extra images")
