"""ImageFolder trees (ImageNet layout) as float [0, 1] tensors, optionally restricted to a class list.

`root/train/<class>/*.JPEG` + `root/val/<class>/...` (split picked by `train=`) or a class-folder
tree itself. Class subsets (e.g. ImageNet-A/O's 200 wnids) come from `classes=[...]` or a file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder

import torch
from torchvision.transforms import v2

from kmix.data.arrays import ArrayDataset
from kmix.data.cache import cached, decode_samples, fingerprint, read_rgb
from kmix.data.info import DatasetInfo, class_index, class_index_map  # noqa: F401 (class_index_map: public here too)
from kmix.io import write_json_atomic
from kmix.data.transforms import IMAGENET_MEAN, IMAGENET_STD, RESIZE_RATIO, imagenet_transform
from kmix.runs import Stream, seed_for

TRAIN_DIR = "train"
EVAL_DIRS = ("val", "validation", "test")
DEFAULT_IMAGE_SIZE = 224


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB (greyscale/CMYK/palette converted, 16-bit greyscale scaled to 8 bits, 32-bit
    and float pixels refused: `kmix.data.cache.read_rgb`); the error names the file if it is unreadable."""
    return read_rgb(path, path)


def find_unreadable_images(dataset: "KmixImageFolder", quiet: bool = True) -> list[str]:
    """Paths of the images PIL cannot decode: an opt-in check before a long run (reads every file)."""
    bad = []
    for path, _ in tqdm(dataset.samples, desc="checking images", unit="img", disable=quiet):
        try:
            with Image.open(path) as img:
                img.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            bad.append(path)
    return bad


def check_all_images(path: str | os.PathLike, splits: Sequence[str], quiet: bool = True) -> None:
    """Decode every image of the ImageFolder dataset at `path` in `splits` ('train', 'test'; the held-out split
    is found as for training), raising one line naming the unreadable files: `kmix train --check-images`."""
    for split in splits:
        dataset = KmixImageFolder(resolve_split_dir(path, train=split == "train"))
        bad = find_unreadable_images(dataset, quiet=quiet)
        if bad:
            raise ValueError(f"{len(bad)} unreadable image(s) in the {split} split of {path}: "
                             + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))


def check_readable_once(dataset: "KmixImageFolder", what: str, quiet: bool = True) -> None:
    """Decode every image of `dataset` before a run needs them, raising naming the unreadable files. A
    passed check is remembered in the data cache under the files' fingerprint, so it reruns only when
    they change (e.g. a test split, which a run reads first after its first epoch)."""
    import hashlib
    import json

    from kmix.data.cache import default_cache_dir

    root = Path(dataset.root).resolve()
    stamp = fingerprint(root)
    marker = default_cache_dir() / f"readable-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.json"
    try:
        if json.loads(marker.read_text()).get("fingerprint") == stamp:
            return
    except (OSError, ValueError):
        pass
    bad = find_unreadable_images(dataset, quiet=quiet)
    if bad:
        raise ValueError(f"{len(bad)} unreadable image(s) in {what}: " + ", ".join(bad[:5])
                         + (" ..." if len(bad) > 5 else ""))
    try:
        write_json_atomic(marker, {"root": str(root), "fingerprint": stamp, "images": len(dataset.samples)})
    except OSError:  # a read-only cache only costs the check next time
        pass


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names (e.g. wnids) from a text file, one per line; blank lines and `#` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list file not found: {path}")
    names = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"class list file {path} names no classes")
    return _check_unique(names, str(path))


def _check_unique(names: Sequence[str], source: str) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"class {name!r} is listed twice in {source}")
        seen.add(name)
    return list(names)


def resolve_split_dir(path: str | os.PathLike, train: bool) -> Path:
    """The class-folder tree to read: `path/train` or `path/val` when `path/train` exists, else `path`."""
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"ImageFolder path not found: {root}")
    if not root.is_dir():
        raise ValueError(f"ImageFolder path is not a directory: {root}")
    if not (root / TRAIN_DIR).is_dir():
        return root  # a class-folder tree itself
    if train:
        return root / TRAIN_DIR
    for name in EVAL_DIRS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"{root} has a {TRAIN_DIR}/ folder but no {'/, '.join(EVAL_DIRS)}/ folder for train=False; make a "
        f"seeded hold-out with kmix.data.imagefolder.split_imagefolder({str(root)!r}, 'NEW_DIR') and use NEW_DIR"
    )


class KmixImageFolder(ImageFolder):
    """torchvision ImageFolder with RGB loading, clear errors and an optional class restriction.

    With `classes`, only those folders are read and label i is `classes[i]` (the order given).
    """

    def __init__(self, root: str | os.PathLike, transform=None, classes: Sequence[str] | None = None):
        self.restrict_to = None if classes is None else _check_unique([str(c) for c in classes], "classes")
        root = Path(root)
        try:
            super().__init__(str(root), transform=transform, loader=load_rgb)
        except FileNotFoundError as err:  # torchvision: no class folders / a class without images
            raise FileNotFoundError(f"ImageFolder {root}: {err}") from err

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """Sorted class folders (or the requested subset, in its given order) -> label index."""
        present = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        if not present:
            raise FileNotFoundError(f"no class folders in {directory} (expected {directory}/<class>/<image>)")
        if self.restrict_to is None:
            classes = present
        else:
            if not self.restrict_to:
                raise ValueError("classes is an empty list: name at least one class folder")
            on_disk = set(present)
            missing = [c for c in self.restrict_to if c not in on_disk]
            if missing:
                more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
                raise FileNotFoundError(f"class folders missing in {directory}: {', '.join(missing[:5])}{more}")
            classes = list(self.restrict_to)
        return classes, class_index(classes)


def train_split_bytes(path: str | os.PathLike, image_size: int | None = None) -> int:
    """Bytes of the training split held as uint8 images of `image_size` (default DEFAULT_IMAGE_SIZE) px squared:
    what the device pipeline would keep in memory."""
    size = image_size or DEFAULT_IMAGE_SIZE
    return len(KmixImageFolder(resolve_split_dir(path, train=True)).samples) * size * size * 3


def has_holdout(path: str | os.PathLike) -> bool:
    """Whether an ImageFolder path has a held-out split (train/ beside val/, validation/ or test/)."""
    root = Path(path).expanduser()
    return (root / TRAIN_DIR).is_dir() and any((root / name).is_dir() for name in EVAL_DIRS)


def build_imagefolder(path: str | os.PathLike, *, train: bool = True, augment: bool = False,
                      image_size: int | None = None,
                      classes: Sequence[str] | str | os.PathLike | None = None,
                      cached: bool = False, quiet: bool = False) -> tuple[KmixImageFolder | ArrayDataset, DatasetInfo]:
    """Return (dataset, info) for an ImageFolder tree; `classes` is a list of names or a one-per-line file.

    `augment`: RandomResizedCrop(image_size) + flip; otherwise Resize(image_size * 256/224) + CenterCrop.
    `cached`: decode the split once at the fixed size into the uint8 cache (train: short side resized
    to the size and centre-cropped, the random resized crop then taken from that; eval: the same
    Resize + CenterCrop as above) and serve an ArrayDataset the device pipeline can hold.
    """
    size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
    split_dir = resolve_split_dir(path, train)
    if isinstance(classes, (str, os.PathLike)):
        classes = read_class_list(classes)
    if cached:
        dataset = _cached_split(split_dir, size, train=train, augment=augment, classes=classes, quiet=quiet)
    else:
        dataset = KmixImageFolder(split_dir, transform=imagenet_transform(size, augment=augment), classes=classes)
    root = Path(path).expanduser().resolve()
    name = root.parent.name if root.name in (TRAIN_DIR, *EVAL_DIRS) else root.name
    info = DatasetInfo(
        name=name, num_classes=len(dataset.classes), in_chans=3, input_size=size,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, class_names=tuple(dataset.classes),
    )
    return dataset, info


def _cached_split(split_dir: Path, size: int, *, train: bool, augment: bool, classes: Sequence[str] | None,
                  quiet: bool) -> ArrayDataset:
    folder = KmixImageFolder(split_dir, classes=classes)  # validates the class folders, names the order
    resize = size if train else round(size * RESIZE_RATIO)
    source = split_dir.resolve()
    key = {"source": str(source), "size": size, "resize": resize, "classes": folder.classes}
    arrays = cached(key, fingerprint(source),
                    lambda: {"split": decode_samples(folder.samples, folder.classes, source, size, resize, quiet)},
                    "split", quiet=quiet)
    if augment:
        transform = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                                v2.ToDtype(torch.float32, scale=True)])
        return ArrayDataset(arrays, transform, "resized_crop")
    return ArrayDataset(arrays, v2.ToDtype(torch.float32, scale=True), None)


def split_imagefolder(src: str | os.PathLike, dst: str | os.PathLike, *, val_fraction: float = 0.1,
                      seed: int = 0) -> dict:
    """Write `dst/train` and `dst/val` as symlink trees over a class-folder tree `src` (a seeded,
    per-class hold-out) plus `dst/split.json` recording it; `build_dataset(dst)` then reads both splits.

    For data shipped with a training split only (e.g. Imagenette's `train/`); `src` is left untouched.
    """
    import random

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    source = resolve_split_dir(src, train=True).resolve()
    full = KmixImageFolder(source)
    dst = Path(dst).expanduser()
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"split destination {dst} exists and is not empty; choose a new folder")
    by_class: dict[int, list[str]] = {}
    for path, label in full.samples:
        by_class.setdefault(label, []).append(path)
    rng = random.Random(seed_for(Stream.IMAGEFOLDER_SPLIT, seed))
    val: list[str] = []
    for label in sorted(by_class):
        files = sorted(by_class[label])
        rng.shuffle(files)
        n_val = max(1, round(val_fraction * len(files))) if len(files) > 1 else 0
        val += files[:n_val]
    val_set = set(val)
    for path, label in full.samples:
        split = "val" if path in val_set else TRAIN_DIR
        link = dst / split / full.classes[label] / Path(path).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    record = {
        "source": str(source), "val_fraction": val_fraction, "seed": seed,
        "classes": full.classes, "n_train": len(full.samples) - len(val), "n_val": len(val),
        "val": sorted(os.path.relpath(p, source) for p in val),
    }
    write_json_atomic(dst / "split.json", record, indent=1)
    return record
