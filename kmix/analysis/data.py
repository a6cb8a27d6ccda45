"""Evaluation data for the analyses: any `build_dataset` spec, an optional fixed random subset, batched logits."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from kmix.data.info import DatasetInfo
from kmix.runs import Stream, generator_for


def load_eval_data(spec: str, *, root: str | None = None, limit: int | None = None, seed: int = 0,
                   image_size: int | None = None, train: bool = False,
                   classes: Sequence[str] | None = None) -> tuple[Dataset, DatasetInfo]:
    """Test split of `spec`, optionally only the images of `classes` (names); with `limit`, a fixed random
    subset of that many images (drawn with `seed`)."""
    from kmix.data.registry import build_dataset

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    dataset, info = build_dataset(spec, root=root, train=train, augment=False, image_size=image_size)
    if len(dataset) == 0:
        raise ValueError(f"dataset {spec!r} is empty")
    if classes is not None:
        dataset, _ = restrict_to_classes(dataset, info, classes)
    if limit is not None and limit < len(dataset):
        gen = generator_for(Stream.EVAL_SUBSET, seed)
        keep = torch.randperm(len(dataset), generator=gen)[:limit].sort().values.tolist()
        targets = getattr(dataset, "targets", None)
        dataset = Subset(dataset, keep)
        if targets is not None:
            dataset.targets = [int(targets[i]) for i in keep]
    return dataset, info


def restrict_to_classes(dataset: Dataset, info: DatasetInfo, classes: Sequence[str]) -> tuple[Dataset, list[str]]:
    """Keep only the items whose class name is in `classes`; returns (subset, the dataset's class names)."""
    names = list(info.class_names)
    if not names:
        raise ValueError(f"dataset {info.name!r} has no class names, so it cannot be restricted to a class list")
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"dataset {info.name!r} has no .targets, so it cannot be restricted to a class list")
    wanted = set(classes)
    keep = [i for i, t in enumerate(targets) if names[int(t)] in wanted]
    if not keep:
        raise ValueError(f"no image of dataset {info.name!r} belongs to the class list (e.g. {list(classes)[:5]})")
    sub = Subset(dataset, keep)
    sub.targets = [int(targets[i]) for i in keep]
    return sub, names


class ChannelAdapter(Dataset):
    """Convert images to `in_chans` channels: RGB -> gray by channel mean, gray -> RGB by repetition."""

    def __init__(self, dataset: Dataset, in_chans: int):
        self.dataset = dataset
        self.in_chans = in_chans
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        if x.shape[0] != self.in_chans:
            x = x.mean(0, keepdim=True) if self.in_chans == 1 else x.expand(self.in_chans, *x.shape[1:])
        return x, y


def with_channels(dataset: Dataset, data_chans: int, model_chans: int) -> Dataset:
    """`dataset` as is when the channel counts agree; else wrapped in a ChannelAdapter (1 <-> C only)."""
    if data_chans == model_chans:
        return dataset
    if 1 not in (data_chans, model_chans):
        raise ValueError(f"cannot feed {data_chans}-channel images to a model taking {model_chans} channels")
    return ChannelAdapter(dataset, model_chans)


def check_labels_fit(info: DatasetInfo, num_classes: int) -> None:
    """Dataset labels must index the model's outputs (no silent out-of-range cross-entropy)."""
    if info.num_classes > num_classes:
        raise ValueError(f"dataset {info.name!r} has {info.num_classes} classes but the model only {num_classes}")


def make_loader(dataset: Dataset, batch_size: int, workers: int = 0) -> DataLoader:
    """An in-order, non-shuffling loader (the analyses need a fixed evaluation set)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def collect_logits(model: torch.nn.Module, loader: DataLoader, device: torch.device,
                   positions: Sequence[int] | None = None, quiet: bool = True,
                   desc: str = "eval") -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` (eval mode) over `loader`; return (logits (N, C) float32 on CPU, labels (N,) int64).

    With `positions`, the logits are restricted to those class columns (in that order).
    """
    model.eval()
    pos = torch.as_tensor(list(positions), dtype=torch.long) if positions is not None else None
    all_logits, all_labels = [], []
    for x, y in tqdm(loader, desc=desc, disable=quiet, leave=False):
        out = model(x.to(device)).float().cpu()
        if pos is not None:
            out = out[:, pos]
        all_logits.append(out)
        all_labels.append(torch.as_tensor(y, dtype=torch.long))
    return torch.cat(all_logits), torch.cat(all_labels)


def stack_dataset(dataset: Dataset, batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Materialise the (small) evaluation set as a list of CPU batches, so repeated scans reread nothing."""
    return [(x, torch.as_tensor(y, dtype=torch.long)) for x, y in make_loader(dataset, batch_size)]
