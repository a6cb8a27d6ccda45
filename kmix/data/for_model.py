"""A dataset as a trained model sees it: the commands that read a checkpoint (score, subsample) load the
data at the checkpoint's input size and refuse data whose channels or classes differ from the model's."""
from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from kmix.data.info import DatasetInfo
from kmix.data.registry import DATASET_NAMES, build_dataset


def image_size_for(spec: str, meta: dict[str, Any], given: int | None = None) -> int | None:
    """`given`, else the checkpoint's input size for ImageFolder data (which has no size of its own);
    None for the named datasets (their own size)."""
    if given is not None:
        return given
    return None if str(spec) in DATASET_NAMES or not meta.get("input_size") else int(meta["input_size"])


def check_data_fits_model(info: DatasetInfo, meta: dict[str, Any], *, data: str, checkpoint: Any) -> None:
    """Refuse, naming both sides, data whose channels, classes (by name, in order) or class count differ
    from what the checkpoint's model was trained on: its label i must be the model's class i."""
    if info.in_chans != meta["in_chans"]:
        raise ValueError(f"checkpoint {checkpoint} expects {meta['in_chans']} channel(s) but --data {data!r} has "
                         f"{info.in_chans}")
    model_classes = list((meta.get("data") or {}).get("class_names") or ())
    data_classes = list(info.class_names)
    if model_classes and data_classes and model_classes != data_classes:
        raise ValueError(f"--data {data!r} has classes {_short(data_classes)} but checkpoint {checkpoint} was "
                         f"trained on {_short(model_classes)}: label i would be scored as the model's class i. "
                         "Use the data the model was trained on")
    if info.num_classes > meta["num_classes"]:
        raise ValueError(f"--data {data!r} has {info.num_classes} classes but checkpoint {checkpoint} "
                         f"predicts {meta['num_classes']}")


def train_data_for_model(spec: str, meta: dict[str, Any], *, root: str | None = None,
                         checkpoint: Any = "checkpoint") -> tuple[Dataset, DatasetInfo]:
    """The training split of `spec`, plain (no augmentation), at the checkpoint's size, checked against it."""
    dataset, info = build_dataset(spec, root=root, train=True, image_size=image_size_for(spec, meta))
    check_data_fits_model(info, meta, data=spec, checkpoint=checkpoint)
    return dataset, info


def _short(names: list[str]) -> str:
    return "[" + ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "") + "]"
