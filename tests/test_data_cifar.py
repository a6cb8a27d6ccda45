"""CIFAR-10/100 through build_dataset on tiny pickles written in the real on-disk layout."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from kmix.data import build_dataset
from kmix.data.transforms import CIFAR10_MEAN, CIFAR100_STD

PER_BATCH = 4  # images per CIFAR-10 batch file


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """data_batch_1..5, test_batch, batches.meta under root/cifar-10-batches-py; returns what was written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = _images(rng, PER_BATCH), rng.integers(0, 10, PER_BATCH).tolist()
        _dump(folder / name, {"batch_label": name, "labels": labels, "data": data, "filenames": []})
        written[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": PER_BATCH})
    return written


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data, fine = _images(rng, n), rng.integers(0, 100, n).tolist()
        _dump(folder / name, {"data": data, "fine_labels": fine, "coarse_labels": [f // 5 for f in fine]})
        written[name] = (data, fine)
    _dump(folder / "meta", {"fine_label_names": [f"class{i:02d}" for i in range(100)],
                            "coarse_label_names": [f"super{i}" for i in range(20)]})
    return written


def test_cifar10_items_match_the_pickled_pixels(tmp_path):
    written = write_cifar10(tmp_path)
    train, info = build_dataset("cifar10", root=str(tmp_path), train=True)
    test, _ = build_dataset("cifar10", root=tmp_path, train=False)
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH
    assert info.num_classes == 10 and info.in_chans == 3 and info.input_size == 32
    assert info.mean == CIFAR10_MEAN and info.class_names[0] == "airplane"
    # the 6th training image is the 2nd image of data_batch_2, CHW from CIFAR's row-major R,G,B planes
    data, labels = written["data_batch_2"]
    x, y = train[PER_BATCH + 1]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    expected = torch.from_numpy(data[1].reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(x, expected)
    assert y == labels[1] and isinstance(y, int)
    all_labels = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.targets == all_labels and test.targets == written["test_batch"][1]


def test_cifar100_uses_fine_labels_and_class_names(tmp_path):
    written = write_cifar100(tmp_path)
    train, info = build_dataset("cifar100", root=tmp_path, train=True)
    test, _ = build_dataset("cifar100", root=tmp_path, train=False)
    assert len(train) == 6 and len(test) == 3
    assert info.num_classes == 100 and info.std == CIFAR100_STD and info.class_names[7] == "class07"
    assert train.targets == written["train"][1]
    x, _ = test[2]
    torch.testing.assert_close(x, torch.from_numpy(written["test"][0][2].reshape(3, 32, 32) / 255).float())


def test_cifar_augment_is_a_padded_crop_plus_flip(tmp_path):
    write_cifar10(tmp_path)
    plain, _ = build_dataset("cifar10", root=tmp_path, train=True)
    aug, _ = build_dataset("cifar10", root=tmp_path, train=True, augment=True)
    torch.manual_seed(0)
    x = plain[3][0]
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    # every augmented view is some 32x32 window of the zero-padded image, possibly mirrored
    candidates = [padded[:, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
    candidates += [c.flip(-1) for c in candidates]
    views = [aug[3][0] for _ in range(20)]
    for v in views:
        assert v.shape == (3, 32, 32)
        assert any(torch.equal(v, c) for c in candidates)
    assert any(not torch.equal(v, x) for v in views)  # it does augment


def test_missing_cifar_names_root_and_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)cifar10 not found under root.*--download"):
        build_dataset("cifar10", root=tmp_path / "nowhere")
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        build_dataset("cifar10", root=tmp_path)


def test_corrupt_cifar_pickle_is_a_clear_error(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt or not CIFAR"):
        build_dataset("cifar100", root=tmp_path)


def test_cifar_rejects_other_image_sizes_and_classes(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="image_size=64"):
        build_dataset("cifar10", root=tmp_path, image_size=64)
    with pytest.raises(ValueError, match="classes="):
        build_dataset("cifar10", root=tmp_path, classes=["cat"])


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'"):
        build_dataset("cifar11")


def test_download_flag_does_not_refetch_present_files(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download although the files are present")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    write_cifar10(tmp_path)
    ds, _ = build_dataset("cifar10", root=tmp_path, download=True)
    assert len(ds) == 5 * PER_BATCH


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="cifar100 is not under root .* downloading it failed: .*no network"):
        build_dataset("cifar100", root=tmp_path, download=True)


def test_dataset_pickles_for_spawned_dataloader_workers(tmp_path):
    write_cifar100(tmp_path)
    ds, _ = build_dataset("cifar100", root=tmp_path, augment=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.targets == ds.targets and torch.equal(clone.images, ds.images)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
