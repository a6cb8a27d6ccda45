"""ImageFolder through build_dataset: split layouts, transforms, class subsets, and named errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from kmix.data import build_dataset
from kmix.data.imagefolder import class_index_map, find_unreadable_images, read_class_list
from kmix.data.transforms import IMAGENET_MEAN

CLASSES = ("n001", "n002", "n003")


def _write_tree(folder: Path, per_class: int = 2, size=(40, 30), seed: int = 0) -> None:
    """PNG class folders; the first image of n002 is greyscale (must come back as 3 channels)."""
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            if c == "n002" and i == 0:
                Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8), mode="L").save(folder / c / f"{i}.png")
            else:
                Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / c / f"{i}.png")


@pytest.fixture
def split_root(tmp_path) -> Path:
    _write_tree(tmp_path / "tiny" / "train", per_class=2)
    _write_tree(tmp_path / "tiny" / "val", per_class=1, seed=1)
    return tmp_path / "tiny"


def test_split_root_picks_train_or_val(split_root):
    train, info = build_dataset(str(split_root), train=True, image_size=16)
    val, _ = build_dataset(str(split_root), train=False, image_size=16)
    assert len(train) == 6 and len(val) == 3
    assert train.targets == [0, 0, 1, 1, 2, 2] and val.targets == [0, 1, 2]
    assert info.name == "tiny" and info.num_classes == 3 and info.class_names == CLASSES
    assert info.in_chans == 3 and info.input_size == 16 and info.mean == IMAGENET_MEAN
    x, y = train[2]  # the greyscale image
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 1
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_eval_transform_is_resize_then_center_crop(split_root):
    ds, _ = build_dataset(str(split_root / "train"), image_size=20)  # a class-folder tree itself
    x, _ = ds[0]
    src = Image.open(split_root / "train" / "n001" / "0.png").convert("RGB")  # 40x30
    # short side 30 -> round(20 * 256/224) = 23 (long side 40 -> 30), then the central 20x20
    expected = TF.pil_to_tensor(TF.center_crop(TF.resize(src, 23), 20)).float() / 255
    assert x.shape == (3, 20, 20)
    torch.testing.assert_close(x, expected)
    ds_big, info = build_dataset(str(split_root / "train"))
    assert ds_big[0][0].shape == (3, 224, 224) and info.input_size == 224 and info.name == "tiny"


def test_augment_gives_random_views_of_the_right_size(split_root):
    ds, _ = build_dataset(str(split_root), train=True, augment=True, image_size=24)
    torch.manual_seed(0)
    views = [ds[0][0] for _ in range(4)]
    assert all(v.shape == (3, 24, 24) for v in views)
    assert any(not torch.equal(views[0], v) for v in views[1:])
    plain, _ = build_dataset(str(split_root), train=True, image_size=24)
    assert torch.equal(plain[0][0], plain[0][0])  # eval transform is deterministic


def test_class_subset_from_list_and_file(split_root, tmp_path):
    ds, info = build_dataset(str(split_root), classes=["n003", "n001"], image_size=8)
    assert info.class_names == ("n003", "n001") and info.num_classes == 2
    assert len(ds) == 4 and sorted(ds.targets) == [0, 0, 1, 1]
    assert all(Path(p).parent.name == ("n003" if t == 0 else "n001") for p, t in ds.samples)
    f = tmp_path / "wnids.txt"
    f.write_text("# a 2-class subset\nn002\n\nn003  # second\n")
    assert read_class_list(f) == ["n002", "n003"]
    ds2, info2 = build_dataset(str(split_root), train=False, classes=str(f), image_size=8)
    assert info2.class_names == ("n002", "n003") and ds2.targets == [0, 1]
    # logits of a model trained on all three classes, restricted to the subset's columns
    assert class_index_map(CLASSES, info2.class_names) == [1, 2]
    with pytest.raises(ValueError, match="not among the model's 3 classes: n999"):
        class_index_map(CLASSES, ["n999"])


def test_class_subset_errors(split_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="class folders missing in .*train: n777"):
        build_dataset(str(split_root), classes=["n001", "n777"])
    with pytest.raises(ValueError, match="classes is an empty list"):
        build_dataset(str(split_root), classes=[])
    with pytest.raises(ValueError, match="'n001' is listed twice"):
        build_dataset(str(split_root), classes=["n001", "n001"])
    with pytest.raises(FileNotFoundError, match="class list file not found"):
        build_dataset(str(split_root), classes=str(tmp_path / "none.txt"))
    dup = tmp_path / "dup.txt"
    dup.write_text("n001\nn001\n")
    with pytest.raises(ValueError, match=f"listed twice in {dup}"):
        read_class_list(dup)


def test_missing_empty_and_classless_paths(tmp_path, split_root):
    with pytest.raises(FileNotFoundError, match="ImageFolder path not found: .*absent"):
        build_dataset(str(tmp_path / "absent"))
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders in .*bare"):
        build_dataset(str(tmp_path / "bare"))
    (split_root / "train" / "n004").mkdir()
    with pytest.raises(FileNotFoundError, match="n004"):  # a class folder without images is named
        build_dataset(str(split_root))
    only_train = tmp_path / "only"
    _write_tree(only_train / "train", per_class=1)
    with pytest.raises(FileNotFoundError, match="no val/, validation/, test/ folder for train=False"):
        build_dataset(str(only_train), train=False)


def test_corrupt_image_error_names_the_file(split_root):
    bad = split_root / "train" / "n003" / "1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds, _ = build_dataset(str(split_root), image_size=8)
    with pytest.raises(ValueError, match=f"cannot read image {bad}"):
        ds[5]
    assert ds[4][0].shape == (3, 8, 8)  # its neighbours still load
    assert find_unreadable_images(ds) == [str(bad)]


def test_imagenette_train_folder(imagenette_root):
    ds, info = build_dataset(str(imagenette_root), train=True, image_size=64)
    assert info.num_classes == 10 and len(info.class_names) == 10
    assert info.class_names[0] == "n01440764" and info.name == "imagenette-224"
    assert len(ds) == len(ds.targets) > 9000
    x, y = ds[len(ds) // 2]
    assert x.shape == (3, 64, 64) and 0 <= y < 10


def test_dataset_pickles_for_spawned_dataloader_workers(split_root):
    import pickle

    ds, _ = build_dataset(str(split_root), classes=["n002"], image_size=8)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.classes == ["n002"] and torch.equal(clone[1][0], ds[1][0])


def test_split_imagefolder_makes_a_seeded_stratified_holdout(tmp_path):
    from kmix.data.imagefolder import split_imagefolder

    src = tmp_path / "src"
    _write_tree(src / "train", per_class=5)
    record = split_imagefolder(src, tmp_path / "split", val_fraction=0.4, seed=3)
    assert record["n_val"] == 6 and record["n_train"] == 9  # 2 of 5 per class held out
    train, info = build_dataset(str(tmp_path / "split"), train=True, image_size=8)
    val, _ = build_dataset(str(tmp_path / "split"), train=False, image_size=8)
    assert info.class_names == CLASSES and info.name == "split"
    assert sorted(val.targets) == [0, 0, 1, 1, 2, 2] and len(train) == 9
    names = lambda ds: {Path(p).relative_to(Path(p).parents[1]).as_posix() for p, _ in ds.samples}
    assert names(train).isdisjoint(names(val)) and len(names(train) | names(val)) == 15
    assert sorted(names(val)) == record["val"]
    link = Path(val.samples[0][0])
    assert link.is_symlink() and link.resolve().parents[1] == (src / "train").resolve()
    again = split_imagefolder(src, tmp_path / "split2", val_fraction=0.4, seed=3)
    assert again["val"] == record["val"]  # same seed, same split
    with pytest.raises(FileExistsError, match="not empty"):
        split_imagefolder(src, tmp_path / "split", val_fraction=0.4)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_imagefolder(src, tmp_path / "x", val_fraction=1.0)
