"""`ArrayDataset`: a decoded uint8 split (ImageArrays) served item by item, for the worker pipeline,
evaluation and scoring; the device pipeline (`kmix.data.device_loader`) reads its `.arrays` directly."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from kmix.data.cache import ImageArrays

# what the device pipeline does for a training set: CIFAR-style padded crop + flip, or a resized crop + flip
DEVICE_AUGMENTS = ("crop_flip", "resized_crop")


class ArrayDataset(Dataset):
    """Items (float (C, H, W) in [0, 1], int label) from uint8 arrays through an optional v2 transform.

    `device_augment` names the batched augmentation the device pipeline applies instead of
    `transform` ('crop_flip', 'resized_crop' or None for none), so both pipelines augment alike.
    """

    def __init__(self, arrays: ImageArrays, transform: v2.Transform | None = None,
                 device_augment: str | None = None):
        if device_augment is not None and device_augment not in DEVICE_AUGMENTS:
            raise ValueError(f"device_augment must be one of {DEVICE_AUGMENTS} or None, got {device_augment!r}")
        self.arrays = arrays
        self.targets = arrays.labels.tolist()
        self.classes = list(arrays.classes)
        self.transform = transform
        self.device_augment = device_augment

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.arrays.images[index].permute(2, 0, 1)
        x = self.transform(x) if self.transform is not None else TF.to_dtype(x, torch.float32, scale=True)
        return x, self.targets[index]
