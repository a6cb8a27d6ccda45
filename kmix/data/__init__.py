"""Datasets (digits, CIFAR, ImageFolder) as [0, 1] float tensors; normalisation lives in the model."""
from kmix.data.info import DatasetInfo
from kmix.data.registry import build_dataset
from kmix.data.subset import load_indices, save_indices, subset_dataset

__all__ = ["DatasetInfo", "build_dataset", "load_indices", "save_indices", "subset_dataset"]
