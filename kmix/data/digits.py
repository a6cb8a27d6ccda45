"""scikit-learn's 8x8 handwritten digits (1,797 images): the embedded, offline default dataset."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from kmix.data.info import DatasetInfo

DIGITS_SIZE = 16  # upsampled from 8x8 so that nested boxes have room
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


class DigitsDataset(TensorDataset):
    """Digits as float tensors in [0, 1], shape (1, 16, 16); a fixed stratified 80/20 split."""

    def __init__(self, train: bool = True):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        idx = np.arange(len(bunch.target))
        tr, te = train_test_split(
            idx, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=bunch.target
        )
        keep = np.sort(tr if train else te)
        images = torch.from_numpy(bunch.images[keep].astype(np.float32) / 16.0).unsqueeze(1)
        images = F.interpolate(images, size=DIGITS_SIZE, mode="bilinear", align_corners=False).clamp_(0, 1)
        labels = torch.from_numpy(bunch.target[keep].astype(np.int64))
        super().__init__(images, labels)
        self.targets = labels.tolist()
        self.source_indices = keep  # positions in sklearn's load_digits order


DIGITS_INFO = DatasetInfo(
    name="digits", num_classes=10, in_chans=1, input_size=DIGITS_SIZE,
    mean=(0.30,), std=(0.40,), class_names=tuple(str(i) for i in range(10)),
)
