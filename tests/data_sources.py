"""Tiny image sources in the layouts users have (CIFAR JPEG tree, its .tar.gz), written for tests."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from kmix.data.cifar import CIFAR10_CLASSES


def write_cifar_tree(root: Path, n_train: int = 3, n_test: int = 2, seed: int = 0, fmt: str = "png") -> Path:
    """root/train/<class>/NNNN.<fmt> and root/test/<class>/... for the ten CIFAR-10 classes (32x32 RGB).

    Pixel (0, 0) of every image encodes its class index, so label order can be checked from pixels."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(CIFAR10_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[0, 0] = c * 20
                Image.fromarray(pixels).save(folder / f"{i:04d}.{fmt}")
    return root


def tar_tree(tree: Path, path: Path) -> Path:
    """A .tar.gz of tree's train/ and test/ folders (members train/<class>/<file>)."""
    with tarfile.open(path, "w:gz") as tf:
        for split in ("train", "test"):
            tf.add(tree / split, arcname=split)
    return path


def tiny_imagefolder(root: Path) -> Path:
    """root/train/{a,b}/ (12 images each) and root/val/{a,b}/ (4 each): random 24x24 RGB PNGs, seeded."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("val", 4)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = (torch.rand(24, 24, 3, generator=gen) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root
