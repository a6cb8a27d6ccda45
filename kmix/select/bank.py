"""Fast access to dataset images by index, for building composites from anywhere in the dataset."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

DEFAULT_CACHE_BYTES = 2 << 30  # datasets up to 2 GiB of float pixels are held in memory


def dataset_labels(dataset: Dataset) -> torch.Tensor:
    """Labels (N,) int64 from the dataset's `.targets` (every kmix dataset has one)."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"dataset {type(dataset).__name__} has no .targets list of labels")
    return torch.as_tensor(list(targets) if not isinstance(targets, torch.Tensor) else targets, dtype=torch.long)


class ImageBank:
    """`bank.pool_for(index)` -> (pool, local_index) such that pool[local_index] are the images at `index`.

    Small datasets are held whole (a TensorDataset's tensor is used as is), so a batch of composites
    is one gather; larger ones load just the images a batch needs.
    """

    def __init__(self, dataset: Dataset, device: str | torch.device = "cpu",
                 cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.dataset = dataset
        self.device = torch.device(device)
        self.images: torch.Tensor | None = None
        first = dataset[0][0]
        if not isinstance(first, torch.Tensor) or first.dim() != 3:
            raise TypeError(f"dataset items must be (C, H, W) image tensors, got {type(first).__name__} "
                            f"{tuple(getattr(first, 'shape', ()))}")
        self.image_shape = tuple(first.shape)
        if isinstance(dataset, TensorDataset):
            self.images = dataset.tensors[0].to(self.device)
        elif len(dataset) * first.numel() * first.element_size() <= cache_bytes:
            loader = DataLoader(dataset, batch_size=512, shuffle=False)
            self.images = torch.cat([x for x, _ in loader]).to(self.device)

    def pool_for(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images needed for `index` (any shape of dataset indices) and `index` remapped into them."""
        if self.images is not None:
            return self.images, index.to(self.device)
        unique, inverse = torch.unique(index.cpu(), return_inverse=True)
        pool = torch.stack([self.dataset[int(i)][0] for i in unique]).to(self.device)
        return pool, inverse.to(self.device)
