"""Decode an image source once into a compact uint8 cache (N, H, W, C) + labels, reused by every command.

A source is a JPEG class-folder tree, a `.tar.gz` of one, or any ImageFolder split resized to a
fixed size. The cache file is keyed by what it was made from (the source path, split, size and
preprocessing) and stores the source's fingerprint (file names, sizes and mtimes), so a changed
source is decoded again. A file replaced by one of the same size and mtime is not noticed unless
KMIX_VERIFY_CACHE=1, which also compares a SHA-256 of the source's contents. Files are written
atomically through `kmix.io`; an unreadable cache file is rebuilt, saying so on stderr.

An archive is read to its end (its gzip CRC checked, its end-of-archive marker found) before
anything is cached, and holds exactly one layout `[<folder>/]{train,test,val}/<class>/<image>`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import zipfile
import zlib
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
VERIFY_ENV = "KMIX_VERIFY_CACHE"  # 1: also compare a SHA-256 of the source's contents before reusing a cache
PIXELS_ENV = "KMIX_MAX_IMAGE_PIXELS"  # raises PIL's decompression-bomb limit (0: no limit)
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


def content_digest(path: str | os.PathLike) -> str:
    """A SHA-256 of a file's bytes, or of a tree's (relative path, bytes) for every file: what
    KMIX_VERIFY_CACHE=1 compares (measured: 0.03 s for the 19 MB CIFAR-10 tarball, 0.25-1.4 s for
    the 114 MB, 9,469-file imagenette-224 tree, warm-cold page cache)."""
    path = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    files = [(path.name, path)] if path.is_file() else []
    if not files:
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            files += [(os.path.relpath(os.path.join(dirpath, n), path), Path(dirpath, n)) for n in sorted(filenames)]
    for shown, full in files:
        h.update(f"{shown}\0".encode())
        with open(full, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:24]


def verify_requested() -> bool:
    return os.environ.get(VERIFY_ENV, "").strip().lower() not in ("", "0", "false", "no")


# --- decoding -------------------------------------------------------------------------------------
def read_rgb(data: bytes | str | os.PathLike, name: str) -> Image.Image:
    """Open one image as 8-bit RGB. 16-bit greyscale is scaled to 8 bits (v * 255 / 65535, rounded);
    32-bit integer and float pixels (modes I, F), which have no fixed range, are refused. Errors are
    a one-line ValueError naming the file (a decompression bomb's says how to allow the image)."""
    limit = os.environ.get(PIXELS_ENV, "").strip()
    if limit:
        if not limit.isdigit():
            raise ValueError(f"{PIXELS_ENV} must be a whole number of pixels (0: no limit), got {limit!r}")
        Image.MAX_IMAGE_PIXELS = int(limit) or None
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            return _to_rgb(img)
    except Image.DecompressionBombError as err:
        raise ValueError(f"cannot read image {name}: {err} If the image is genuine, allow it with "
                         f"{PIXELS_ENV}=<pixels> (0: no limit).") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {name}: {type(err).__name__}: {err}") from err


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "I" and img.format == "PNG":  # older Pillow opens 16-bit greyscale PNGs as mode I
        mode = "I;16"
    if mode.startswith("I;16"):
        wide = np.asarray(img).astype(np.uint32)
        if wide.max(initial=0) > 65535:
            raise ValueError(f"mode {img.mode} pixels exceed 16 bits")
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "floating-point"
        raise ValueError(f"{kind} pixels (PIL mode {mode}) have no fixed 8-bit scale; convert the image to 8 bits")
    return img.convert("RGB")


def decode_rgb(data: bytes | str, name: str, size: int | None = None, resize: int | None = None) -> np.ndarray:
    """Decode one image to uint8 (H, W, 3) (see `read_rgb`); with `size`, resize the short side to
    `resize` (default `size`) and centre-crop size x size. The error names the file."""
    img = read_rgb(data, name)
    if size is not None:
        img = _resize_center_crop(img, size, resize or size)
    return np.asarray(img, dtype=np.uint8)


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


_MEMBER = re.compile(r"^(?:(?P<prefix>[^/]+)/)?(?P<split>train|test|val)/(?P<cls>[^/]+)/(?P<file>[^/]+)$")
_LAYOUT = "[<folder>/]{train,test,val}/<class>/<image>"
try:
    from lzma import LZMAError
except ImportError:  # Python built without lzma
    class LZMAError(Exception):  # type: ignore[no-redef]
        pass
# what a damaged or truncated archive raises while it is read (gzip: BadGzipFile (an OSError) on a bad CRC,
# EOFError when cut short, zlib.error on bad deflate data; tarfile: ReadError)
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, LZMAError)


def _archive_members(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class, member name, bytes) for every image in a tar(.gz) of `[<folder>/]split/<class>/<file>`.

    One layout only: images under two prefixes (e.g. `train/` and `backup/train/`) or outside the layout
    are refused, naming them. The archive is then read to its end, so that a damaged header (where
    tarfile stops as if the archive ended) or a bad gzip CRC raises instead of giving a short split."""
    layout: tuple[str | None, str] | None = None  # the first image's prefix, and that image
    count = 0
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if not member.isfile() or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            m = _MEMBER.match(name)
            if m is None:
                if os.path.basename(name).startswith("."):  # hidden files, e.g. macOS ._name.jpg
                    continue
                raise ValueError(f"{path} holds an image outside the layout {_LAYOUT}: {member.name}")
            if layout is None:
                layout = (m["prefix"], member.name)
            elif m["prefix"] != layout[0]:
                raise ValueError(f"{path} holds images under two top-level layouts: {layout[1]} and {member.name}; "
                                 f"keep one {_LAYOUT} tree")
            f = tf.extractfile(member)
            count += 1
            yield m["split"], m["cls"], member.name, f.read() if f is not None else b""
        _read_to_end(tf, path, count)


def _read_to_end(tf: tarfile.TarFile, path: Path, count: int) -> None:
    """Read what follows the last member tarfile accepted: it must be the end-of-archive marker (zero
    blocks) up to the end of the stream, whose decompressor checks its CRC on the way."""
    end = tf.offset
    tf.fileobj.seek(end)
    zeros = 0
    while chunk := tf.fileobj.read(1 << 20):
        if chunk.count(0) != len(chunk):
            raise ValueError(f"{path} is damaged: its contents stop at an unreadable tar header at byte {end} "
                             f"(after {count} images), with more data after it; nothing was cached")
        zeros += len(chunk)
    if zeros < tarfile.BLOCKSIZE:
        raise ValueError(f"{path} is truncated: it ends after {count} images without the end-of-archive marker; "
                         f"nothing was cached")


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
    except ARCHIVE_ERRORS as err:
        raise ValueError(f"{path} is damaged or truncated, or not a tar archive ({type(err).__name__}: {err}); "
                         f"nothing was cached") from err
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


def save_arrays(path: str | os.PathLike, arrays: ImageArrays, key: dict, content: str | None = None) -> Path:
    """Write `arrays` (+ key, classes, provenance, the source's `content_digest` if given) as an
    uncompressed .npz, atomically."""
    meta = {"format": CACHE_FORMAT, "key": key, "classes": list(arrays.classes), "source": arrays.source,
            "fingerprint": arrays.fingerprint, "content": content}
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, images=arrays.images.numpy(), labels=arrays.labels.numpy(),
                                                 meta=meta_bytes))


def load_arrays(path: str | os.PathLike) -> tuple[ImageArrays, dict] | None:
    """Read a cache file; None when it is missing, unreadable or of another format (it is rebuilt)."""
    return _read_cache(path)[0]


# a damaged or cut cache file: zipfile's BadZipFile (bad CRC, no central directory), EOFError, a short array
_CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error)


def _read_cache(path: str | os.PathLike) -> tuple[tuple[ImageArrays, dict] | None, str | None]:
    """(the cache, None), (None, None) for another format, or (None, why) for a file that cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != CACHE_FORMAT:
                return None, None
            images, labels = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images vs {labels.shape[0]} labels")
        arrays = ImageArrays(images, labels, tuple(meta["classes"]), meta["source"], meta["fingerprint"])
    except _CACHE_ERRORS as err:
        return None, f"{type(err).__name__}: {err}".splitlines()[0]
    return (arrays, meta), None


def cached(key: dict, current_fingerprint: str, build: Callable[[], dict[str, ImageArrays]], split: str, *,
           cache_dir: str | os.PathLike | None = None, quiet: bool = False) -> ImageArrays:
    """The cached ImageArrays of `split` for `key`, or build them (every split `build` returns is cached).

    A cache whose stored fingerprint differs from `current_fingerprint` (the source changed) is rebuilt;
    so is one whose file cannot be read (said on stderr, quiet or not), and, with KMIX_VERIFY_CACHE=1,
    one whose stored content digest is not the source's (`content_digest(key['source'])`).
    """
    path = cache_path({**key, "split": split}, cache_dir)
    loaded, damaged = _read_cache(path) if path.is_file() else (None, None)
    content = content_digest(key["source"]) if verify_requested() and "source" in key else None
    reason = "first use" if loaded is None else "source changed"
    if loaded is not None and loaded[0].fingerprint == current_fingerprint:
        if content is None or loaded[1].get("content") == content:
            return loaded[0]
        reason = f"{VERIFY_ENV}: the contents differ from the cached ones"
    if damaged:
        reason = f"the cache file {path} is damaged ({damaged}); rebuilding it"
        print(f"kmix: {reason}", file=sys.stderr)
    if not quiet:
        tqdm.write(f"kmix: decoding {key.get('source')} once into the cache {path.parent}/ ({reason})")
    if content is None and "source" in key and Path(key["source"]).exists():
        content = content_digest(key["source"])  # stored with the cache, for a later KMIX_VERIFY_CACHE=1
    built = build()
    if split not in built:
        raise FileNotFoundError(f"{key.get('source')} has no {split}/ split (found: {', '.join(sorted(built))})")
    for name, arrays in built.items():
        built[name] = replace(arrays, fingerprint=current_fingerprint)
        save_arrays(cache_path({**key, "split": name}, cache_dir), built[name], {**key, "split": name}, content)
    return built[split]
