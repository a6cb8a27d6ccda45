"""Decode an image source once into a compact uint8 cache (N, H, W, C) + labels, reused by every command.

A source is a JPEG class-folder tree, a `.tar.gz` of one, or any ImageFolder split resized to a
fixed size. The cache file is keyed by what it was made from (the source path, split, size and
preprocessing) and stores the source's fingerprint (file names, sizes and mtimes), so a changed
source is decoded again, never served stale. Files are written atomically through `kmix.io`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from kmix.data.info import class_index
from kmix.io import atomic_write

CACHE_FORMAT = 1
CACHE_ENV = "KMIX_CACHE_DIR"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class ImageArrays:
    """A decoded split: uint8 images (N, H, W, C), int64 labels (N,), class names, and its provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    fingerprint: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()


def default_cache_dir() -> Path:
    """$KMIX_CACHE_DIR, else $XDG_CACHE_HOME/kmix, else ~/.cache/kmix."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kmix"


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES) and Path(path).is_file()


# --- fingerprints ---------------------------------------------------------------------------------
def fingerprint(path: str | os.PathLike) -> str:
    """A digest of a file (name, size, mtime) or of a tree (every file's relative path, size, mtime)."""
    path = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    if path.is_file():
        st = path.stat()
        h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    else:
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                h.update(f"{os.path.relpath(full, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


# --- decoding -------------------------------------------------------------------------------------
def decode_rgb(data: bytes | str, name: str, size: int | None = None, resize: int | None = None) -> np.ndarray:
    """Decode one image to uint8 (H, W, 3); with `size`, resize the short side to `resize` (default
    `size`) and centre-crop size x size. The error names the file."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img = img.convert("RGB")
            if size is not None:
                img = _resize_center_crop(img, size, resize or size)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {name}: {type(err).__name__}: {err}") from err


def _resize_center_crop(img: Image.Image, size: int, short_side: int) -> Image.Image:
    w, h = img.size
    scale = short_side / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _tree_files(split_dir: Path) -> list[tuple[str, str]]:
    """(class folder, file path) for every image file of a class-folder tree, sorted."""
    out = []
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if f.name.lower().endswith(IMAGE_SUFFIXES) and not f.name.startswith("."):
                    out.append((entry.name, f.path))
    return out


_MEMBER = re.compile(r"^(?:\./)?(?:(?P<prefix>[^/]+)/)?(?P<split>train|test|val)/(?P<cls>[^/]+)/(?P<file>[^/]+)$")


def _archive_members(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class, member name, bytes) for every image in a tar(.gz) of `split/<class>/<file>`."""
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            if not member.isfile():
                continue
            m = _MEMBER.match(member.name)
            if m is None or not m["file"].lower().endswith(IMAGE_SUFFIXES):
                continue
            f = tf.extractfile(member)
            yield m["split"], m["cls"], member.name, f.read() if f is not None else b""


def _order_classes(found: Iterable[str], classes: Sequence[str] | None, where: str) -> tuple[str, ...]:
    found = sorted(set(found))
    if not found:
        raise FileNotFoundError(f"no class folders with images in {where} (expected <class>/<image>)")
    if classes is None:
        return tuple(found)
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    if missing or extra:
        raise ValueError(f"{where}: class folders do not match the expected {len(classes)} classes"
                         + (f"; missing {', '.join(missing[:5])}" if missing else "")
                         + (f"; unexpected {', '.join(extra[:5])}" if extra else ""))
    return tuple(classes)


def _stack(items: list[tuple[str, np.ndarray]], classes: tuple[str, ...], source: str,
           digest: str) -> ImageArrays:
    shapes = {a.shape for _, a in items}
    if len(shapes) > 1:
        raise ValueError(f"{source}: images have different sizes {sorted(shapes)[:3]}; pass an image size")
    index = class_index(classes)
    images = torch.from_numpy(np.stack([a for _, a in items])) if items else torch.zeros(0, 0, 0, 3, dtype=torch.uint8)
    labels = torch.tensor([index[c] for c, _ in items], dtype=torch.int64)
    return ImageArrays(images, labels, classes, source, digest)


def decode_samples(samples: Sequence[tuple[str, int]], classes: Sequence[str], source: str | os.PathLike,
                   size: int | None = None, resize: int | None = None, quiet: bool = False) -> ImageArrays:
    """Decode (path, label) pairs, e.g. an ImageFolder's `.samples`, in their order."""
    items = [(classes[label], decode_rgb(p, p, size, resize))
             for p, label in tqdm(samples, desc=f"decoding {source}", unit="img", disable=quiet, leave=False)]
    return _stack(items, tuple(classes), str(source), "")


def decode_tree(split_dir: str | os.PathLike, *, size: int | None = None, resize: int | None = None,
                classes: Sequence[str] | None = None, quiet: bool = False) -> ImageArrays:
    """Decode a class-folder tree (sorted by class, then file name) into ImageArrays."""
    split_dir = Path(split_dir)
    files = _tree_files(split_dir)
    order = _order_classes((c for c, _ in files), classes, str(split_dir))
    items = [(c, decode_rgb(p, p, size, resize))
             for c, p in tqdm(files, desc=f"decoding {split_dir}", unit="img", disable=quiet, leave=False)]
    return _stack(items, order, str(split_dir), fingerprint(split_dir))


def decode_archive(path: str | os.PathLike, *, size: int | None = None, resize: int | None = None,
                   classes: Sequence[str] | None = None, quiet: bool = False) -> dict[str, ImageArrays]:
    """Decode every split (train/test/val) of a tar(.gz) of class-folder trees in one pass."""
    path = Path(path)
    by_split: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    bar = tqdm(desc=f"decoding {path.name}", unit="img", disable=quiet, leave=False)
    try:
        for split, cls, name, data in _archive_members(path):
            by_split.setdefault(split, []).append((cls, name, decode_rgb(data, f"{path}:{name}", size, resize)))
            bar.update(1)
    except tarfile.TarError as err:
        raise ValueError(f"{path} is not a readable tar archive: {err}") from err
    finally:
        bar.close()
    if not by_split:
        raise FileNotFoundError(f"{path} holds no images under train/<class>/ or test/<class>/")
    digest = fingerprint(path)
    out = {}
    for split, rows in by_split.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        order = _order_classes((c for c, _, _ in rows), classes, f"{path}:{split}/")
        out[split] = _stack([(c, a) for c, _, a in rows], order, f"{path}:{split}", digest)
    return out


# --- the cache file -------------------------------------------------------------------------------
def cache_path(key: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the cache for `key` (source, split, size, ...) lives."""
    text = json.dumps({**key, "format": CACHE_FORMAT}, sort_keys=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(str(key.get('source', 'data'))).name}-{key.get('split', '')}")
    return Path(cache_dir or default_cache_dir()) / f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.npz"


def save_arrays(path: str | os.PathLike, arrays: ImageArrays, key: dict) -> Path:
    """Write `arrays` (+ key, classes, provenance) as an uncompressed .npz, atomically."""
    meta = {"format": CACHE_FORMAT, "key": key, "classes": list(arrays.classes), "source": arrays.source,
            "fingerprint": arrays.fingerprint}
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, images=arrays.images.numpy(), labels=arrays.labels.numpy(),
                                                 meta=meta_bytes))


def load_arrays(path: str | os.PathLike) -> tuple[ImageArrays, dict] | None:
    """Read a cache file; None when it is missing, unreadable or of another format (it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != CACHE_FORMAT:
                return None
            images, labels = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return ImageArrays(images, labels, tuple(meta["classes"]), meta["source"], meta["fingerprint"]), meta


def cached(key: dict, current_fingerprint: str, build: Callable[[], dict[str, ImageArrays]], split: str, *,
           cache_dir: str | os.PathLike | None = None, quiet: bool = False) -> ImageArrays:
    """The cached ImageArrays of `split` for `key`, or build them (every split `build` returns is cached).

    A cache whose stored fingerprint differs from `current_fingerprint` (the source changed) is rebuilt.
    """
    path = cache_path({**key, "split": split}, cache_dir)
    loaded = load_arrays(path) if path.is_file() else None
    if loaded is not None and loaded[0].fingerprint == current_fingerprint:
        return loaded[0]
    if not quiet:
        tqdm.write(f"kmix: decoding {key.get('source')} once into the cache {path.parent}/ "
                   f"({'source changed' if loaded is not None else 'first use'})")
    built = build()
    if split not in built:
        raise FileNotFoundError(f"{key.get('source')} has no {split}/ split (found: {', '.join(sorted(built))})")
    for name, arrays in built.items():
        built[name] = replace(arrays, fingerprint=current_fingerprint)
        save_arrays(cache_path({**key, "split": name}, cache_dir), built[name], {**key, "split": name})
    return built[split]
