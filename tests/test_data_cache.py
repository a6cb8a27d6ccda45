"""The uint8 cache: CIFAR from a JPEG tree or its .tar.gz (official label order), reuse, rebuild on change,
errors naming the unreadable file, cached ImageFolder splits."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from kmix.data import build_dataset
from kmix.data.cache import cache_path, default_cache_dir
from kmix.data.cifar import CIFAR10_CLASSES

from data_sources import tar_tree, write_cifar_tree


def _cache_files():
    return sorted(default_cache_dir().glob("*.npz"))


def test_tree_and_tarball_give_the_same_arrays_in_official_class_order(tmp_path):
    tree = write_cifar_tree(tmp_path / "tree")
    tarball = tar_tree(tree, tmp_path / "c10.tar.gz")
    for train, n in ((True, 30), (False, 20)):
        a, info = build_dataset("cifar10", root=tree, train=train)
        b, _ = build_dataset("cifar10", root=str(tarball), train=train)
        assert info.class_names == CIFAR10_CLASSES and info.num_classes == 10
        assert torch.equal(a.arrays.images, b.arrays.images) and a.targets == b.targets
        assert len(a) == n and a.arrays.images.dtype == torch.uint8 and a.arrays.images.shape[1:] == (32, 32, 3)
        # pixel (0,0) encodes the folder's class: labels follow CIFAR's official order
        assert a.arrays.images[:, 0, 0, 0].tolist() == [20 * t for t in a.targets]
        # the pixels are the files' pixels, and items are float [0, 1] CHW
        first = np.array(Image.open(tree / ("train" if train else "test") / "airplane" / "0000.png"))
        assert torch.equal(a.arrays.images[0], torch.from_numpy(first))
        x, y = a[0]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 0
        assert torch.equal(x, TF.to_dtype(torch.from_numpy(first).permute(2, 0, 1), torch.float32, scale=True))


def test_cache_is_reused_then_rebuilt_when_the_source_changes(tmp_path):
    tree = write_cifar_tree(tmp_path / "tree")
    build_dataset("cifar10", root=tree, train=True)
    files = _cache_files()
    key_file = cache_path({"source": str(tree.resolve()), "dataset": "cifar10", "classes": list(CIFAR10_CLASSES),
                           "split": "train"})
    assert key_file in files
    stamp = key_file.stat().st_mtime_ns
    again, _ = build_dataset("cifar10", root=tree, train=True)
    assert key_file.stat().st_mtime_ns == stamp  # reused, not rewritten
    # change one image: the cache is decoded again and serves the new pixels
    target = tree / "train" / "cat" / "0001.png"
    new = np.full((32, 32, 3), 7, dtype=np.uint8)
    Image.fromarray(new).save(target)
    os.utime(target, ns=(stamp + 10**9, stamp + 10**9))
    changed, _ = build_dataset("cifar10", root=tree, train=True)
    assert key_file.stat().st_mtime_ns != stamp
    i = 3 * 3 + 1  # cat is class 3, three images per class, file 0001
    assert torch.equal(changed.arrays.images[i], torch.from_numpy(new))
    assert not torch.equal(again.arrays.images[i], changed.arrays.images[i])


def test_unreadable_image_is_an_error_naming_the_file(tmp_path):
    tree = write_cifar_tree(tmp_path / "tree")
    (tree / "test" / "dog" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*test/dog/0001\.png"):
        build_dataset("cifar10", root=tree, train=True)
    tarball = tar_tree(tree, tmp_path / "c10.tar.gz")
    with pytest.raises(ValueError, match=r"cannot read image .*c10\.tar\.gz:test/dog/0001\.png"):
        build_dataset("cifar10", root=tarball, train=False)


def test_wrong_class_folders_and_sizes_are_refused(tmp_path):
    tree = write_cifar_tree(tmp_path / "tree")
    (tree / "train" / "cat").rename(tree / "train" / "kitty")
    with pytest.raises(ValueError, match="missing cat; unexpected kitty"):
        build_dataset("cifar10", root=tree, train=True)
    small = write_cifar_tree(tmp_path / "small", n_train=1, n_test=1)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(small / "train" / "cat" / "0000.png")
    with pytest.raises(ValueError, match="different sizes"):
        build_dataset("cifar10", root=small, train=True)
    with pytest.raises(FileNotFoundError, match="JPEG tree"):
        build_dataset("cifar10", root=tmp_path / "nothing-here", train=True)


def test_cached_imagefolder_matches_the_uncached_eval_view(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(3):
                h, w = (40, 56) if i % 2 else (48, 36)
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                    tmp_path / "imgs" / split / cls / f"{i}.png")
    root = tmp_path / "imgs"
    plain, info = build_dataset(str(root), train=False, image_size=16)
    cached, info_c = build_dataset(str(root), train=False, image_size=16, cached=True)
    assert info == info_c and cached.targets == plain.targets and cached.arrays.images.shape == (6, 16, 16, 3)
    for i in range(6):  # same resize + centre crop; PIL vs torchvision rounding may differ by one level
        assert (cached[i][0] - plain[i][0]).abs().max() <= 1.5 / 255
    train, _ = build_dataset(str(root), train=True, image_size=16, augment=True, cached=True)
    assert train.device_augment == "resized_crop" and train[0][0].shape == (3, 16, 16)
