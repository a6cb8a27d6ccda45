"""Issue 22, data sources: damaged or look-alike sources are refused with one line naming the file (or
decoded correctly), never trained on silently. W1 16-bit images, W2 a damaged tarball, W3 an extra
top-level folder, W4 a same-size same-mtime swap, R1 a decompression bomb, R2 a truncated tarball,
R3 a damaged cache file."""
from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kmix.cli.main import error_message, main
from kmix.data import build_dataset
from kmix.data.imagefolder import KmixImageFolder

from data_sources import tar_tree, write_cifar_tree


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A cache folder of the test's own, so that 'nothing was cached' can be checked."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("KMIX_CACHE_DIR", str(folder))
    return folder


def _one_line_naming(err: BaseException, path: Path) -> str:
    message = error_message(err)
    assert message is not None, f"a traceback, not a one-line error: {err!r}"
    assert "\n" not in message and str(path) in message, message
    return message


def _show(tmp_path: Path, root: Path) -> list:
    return ["show", "--data", "cifar10", "--data-root", str(root), "--num-images", "2", "--out",
            str(tmp_path / "grid.png")]


# --- W1: 16-bit images ------------------------------------------------------------------------------
def test_w1_a_16_bit_grey_png_decodes_to_its_grey_level_and_32_bit_or_float_pixels_are_refused(tmp_path, cache_dir):
    tree = write_cifar_tree(tmp_path / "tree", n_train=1, n_test=1)
    grey16 = tree / "train" / "cat" / "0000.png"
    Image.fromarray(np.full((32, 32), 128 * 257, dtype=np.uint16)).save(grey16)  # mid-grey, 16 bits
    assert Image.open(grey16).mode == "I;16"
    cached, _ = build_dataset("cifar10", root=tree, train=True)
    assert cached.arrays.images[3].unique().tolist() == [128]  # cat is class 3 (was all 255: white)
    plain = KmixImageFolder(tree / "train")
    assert np.asarray(plain.loader(str(grey16))).tolist() == np.full((32, 32, 3), 128).tolist()

    for name, pixels in (("wide.tif", np.full((32, 32), 100_000, dtype=np.int32)),
                         ("float.tif", np.full((32, 32), 0.5, dtype=np.float32))):
        bad = tree / "test" / "dog" / name
        Image.fromarray(pixels).save(bad)
        with pytest.raises(ValueError, match="no fixed 8-bit scale") as caught:
            build_dataset("cifar10", root=tree, train=False)
        _one_line_naming(caught.value, bad)
        with pytest.raises(ValueError, match="no fixed 8-bit scale"):
            plain.loader(str(bad))
        bad.unlink()


# --- W2 / R2: damaged and truncated tarballs -----------------------------------------------------------
def _tarball(tmp_path: Path, n_train: int = 3, n_test: int = 2) -> Path:
    return tar_tree(write_cifar_tree(tmp_path / "tree", n_train=n_train, n_test=n_test), tmp_path / "c10.tar.gz")


def test_w2_a_bad_gzip_crc_is_refused_before_anything_is_cached(tmp_path, cache_dir):
    tarball = _tarball(tmp_path)
    data = bytearray(tarball.read_bytes())
    data[-8:-4] = bytes(b ^ 0xFF for b in data[-8:-4])  # the gzip trailer's CRC-32: every member still reads
    tarball.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged or truncated.*CRC") as caught:
        build_dataset("cifar10", root=tarball, train=True)
    _one_line_naming(caught.value, tarball)
    assert not list(cache_dir.glob("*.npz"))


def test_w2_a_damaged_tar_header_is_refused_not_read_as_the_end_of_the_archive(tmp_path, cache_dir):
    """A header with a bad checksum inside a gzip whose CRC is right: tarfile stops there as if the
    archive ended: a test split one image short came back, was cached, and was used with exit 0."""
    tarball = _tarball(tmp_path)
    raw = bytearray(gzip.decompress(tarball.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tf:
        victim = [m for m in tf.getmembers() if m.name == "test/truck/0001.png"][0]  # the last image
    raw[victim.offset + 148:victim.offset + 156] = b"0000000\0"  # the header's checksum field
    tarball.write_bytes(gzip.compress(bytes(raw)))
    for train in (True, False):
        with pytest.raises(ValueError, match=r"is damaged: .*unreadable tar header") as caught:
            build_dataset("cifar10", root=tarball, train=train)
        _one_line_naming(caught.value, tarball)
    assert not list(cache_dir.glob("*.npz"))


def test_w2_sixteen_bytes_flipped_anywhere_in_the_second_half_is_an_error_naming_the_file(tmp_path, cache_dir):
    """Every position in steps of 1/400 from 50% to the end, 99.5% included: none gives data with exit 0."""
    data = _tarball(tmp_path).read_bytes()
    damaged = tmp_path / "damaged.tar.gz"
    positions = sorted({int(len(data) * f) for f in np.arange(0.5, 1.0, 0.0025)} | {int(len(data) * 0.995)})
    for at in [p for p in positions if p + 16 <= len(data)]:
        flipped = bytearray(data)
        flipped[at:at + 16] = bytes(b ^ 0xFF for b in flipped[at:at + 16])
        damaged.write_bytes(bytes(flipped))
        try:
            build_dataset("cifar10", root=damaged, train=True)
            build_dataset("cifar10", root=damaged, train=False)
        except Exception as err:  # noqa: BLE001 (what is raised is what is checked)
            _one_line_naming(err, damaged)
        else:
            pytest.fail(f"16 bytes flipped at byte {at} of {len(data)}: read with no error")
    assert not list(cache_dir.glob("*.npz"))


def test_r2_a_truncated_tarball_is_a_one_line_error_naming_the_file(tmp_path, cache_dir, capsys):
    data = _tarball(tmp_path).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    for fraction in (0.5, 0.999):
        cut.write_bytes(data[:int(len(data) * fraction)])
        assert main(_show(tmp_path, cut)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kmix show: error: {cut} is damaged or truncated") and err.count("\n") == 1, err
    # a plain .tar cut at a 512-byte block boundary has no end-of-archive marker
    plain = tmp_path / "cut.tar"
    raw = gzip.decompress(data)
    end = max(m.offset_data + m.size for m in tarfile.open(fileobj=io.BytesIO(raw)).getmembers())
    plain.write_bytes(raw[:-(-end // 512) * 512])
    with pytest.raises(ValueError, match="is truncated: .*end-of-archive marker") as caught:
        build_dataset("cifar10", root=plain, train=True)
    _one_line_naming(caught.value, plain)


def test_w2_a_cifar10_split_with_uneven_or_too_many_images_per_class_is_refused(tmp_path, cache_dir):
    tree = write_cifar_tree(tmp_path / "tree", n_train=3, n_test=2)
    build_dataset("cifar10", root=tree, train=True)  # an even sample of CIFAR-10 (as tests use) is accepted
    (tree / "train" / "truck" / "0002.png").unlink()  # the last class cut short, as a truncated source is
    with pytest.raises(ValueError, match=r"train/ holds 29 images, 2 \(truck\) to 3 \(airplane\) per class, "
                                         r"uneven; the official split has 5,000 per class \(50,000\)") as caught:
        build_dataset("cifar10", root=tree, train=True)
    _one_line_naming(caught.value, tree)


# --- W3: one layout only -------------------------------------------------------------------------------
def test_w3_a_tarball_with_an_extra_top_level_copy_or_a_stray_image_is_refused_naming_it(tmp_path, cache_dir):
    tree = write_cifar_tree(tmp_path / "tree", n_train=2, n_test=1)
    extra = tmp_path / "extra.tar.gz"
    with tarfile.open(extra, "w:gz") as tf:
        for split in ("train", "test"):
            tf.add(tree / split, arcname=split)
        tf.add(tree / "train", arcname="backup/train")  # was read as well: twice the training images
    with pytest.raises(ValueError, match=r"two top-level layouts: train/\S+ and backup/train/airplane/0000\.png")\
            as caught:
        build_dataset("cifar10", root=extra, train=True)
    _one_line_naming(caught.value, extra)

    wrapped = tmp_path / "wrapped.tar.gz"  # one wrapper folder is one layout
    with tarfile.open(wrapped, "w:gz") as tf:
        tf.add(tree, arcname="cifar10")
    data, _ = build_dataset("cifar10", root=wrapped, train=True)
    assert len(data) == 20 and data.targets == [c for c in range(10) for _ in range(2)]

    stray = tmp_path / "stray.tar.gz"  # an image outside <split>/<class>/ was skipped silently
    with tarfile.open(stray, "w:gz") as tf:
        for split in ("train", "test"):
            tf.add(tree / split, arcname=split)
        tf.add(tree / "train" / "cat" / "0000.png", arcname="train/0000.png")
    with pytest.raises(ValueError, match=r"an image outside the layout .*: train/0000\.png"):
        build_dataset("cifar10", root=stray, train=True)


# --- W4: what the cache's fingerprint sees ---------------------------------------------------------------
def test_w4_a_same_size_same_mtime_swap_is_found_with_kmix_verify_cache(tmp_path, cache_dir, monkeypatch):
    tree = write_cifar_tree(tmp_path / "tree", n_train=2, n_test=1, fmt="bmp")  # BMP: every file the same size
    first, _ = build_dataset("cifar10", root=tree, train=True)
    target = tree / "train" / "bird" / "0001.bmp"
    st = target.stat()
    Image.fromarray(np.full((32, 32, 3), 9, dtype=np.uint8)).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    stale, _ = build_dataset("cifar10", root=tree, train=True)  # names, sizes, mtimes: the swap is not seen
    assert torch.equal(stale.arrays.images, first.arrays.images)
    monkeypatch.setenv("KMIX_VERIFY_CACHE", "1")
    fresh, _ = build_dataset("cifar10", root=tree, train=True)
    assert fresh.arrays.images[2 * 2 + 1].unique().tolist() == [9]  # bird is class 2
    again, _ = build_dataset("cifar10", root=tree, train=True)  # the rebuilt cache now verifies
    assert torch.equal(again.arrays.images, fresh.arrays.images)


# --- R1: decompression bombs -----------------------------------------------------------------------------
def test_r1_a_decompression_bomb_is_one_line_naming_the_file_and_how_to_allow_it(tmp_path, cache_dir, capsys,
                                                                                 monkeypatch):
    tree = write_cifar_tree(tmp_path / "tree", n_train=1, n_test=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 = 1,024 pixels > 2 x 100: a "bomb"
    first = tree / "train" / "airplane" / "0000.png"
    assert main(_show(tmp_path, tree)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kmix show: error: cannot read image {first}: Image size (1024 pixels) exceeds limit")
    assert err.count("\n") == 1 and "KMIX_MAX_IMAGE_PIXELS=<pixels>" in err
    with pytest.raises(ValueError, match="KMIX_MAX_IMAGE_PIXELS") as caught:  # ImageFolder, read per item
        KmixImageFolder(tree / "train")[0]
    _one_line_naming(caught.value, first)
    monkeypatch.setenv("KMIX_MAX_IMAGE_PIXELS", "0")
    data, _ = build_dataset("cifar10", root=tree, train=True)
    assert len(data) == 10


# --- R3: a damaged cache file --------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_r3_a_damaged_cache_file_is_rebuilt_and_said_so(tmp_path, cache_dir, capsys, damage):
    tree = write_cifar_tree(tmp_path / "tree", n_train=2, n_test=1)
    good, _ = build_dataset("cifar10", root=tree, train=True)
    (npz,) = [p for p in cache_dir.glob("*.npz") if "-train-" in p.name]
    data = bytearray(npz.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:  # inside the images array: the zip member's CRC no longer matches
        data[len(data) // 2:len(data) // 2 + 16] = bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 16])
    npz.write_bytes(bytes(data))
    capsys.readouterr()
    again, _ = build_dataset("cifar10", root=tree, train=True)
    assert torch.equal(again.arrays.images, good.arrays.images) and again.targets == good.targets
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"kmix: the cache file {npz} is damaged (BadZipFile: ")
    assert err.endswith("; rebuilding it\n")
    assert np.load(npz)["images"].shape == (20, 32, 32, 3)  # rewritten whole
