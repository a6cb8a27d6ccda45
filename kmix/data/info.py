"""What a model needs to know about a dataset: classes, channels, size, normalisation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence


def class_index(classes: Sequence[str]) -> dict[str, int]:
    """Class name -> label (its position in `classes`): the one name-to-index map of datasets, caches and evaluation."""
    return {c: i for i, c in enumerate(classes)}


def class_index_map(model_classes: Sequence[str], subset_classes: Sequence[str]) -> list[int]:
    """For each subset class, its index among the model's classes (select logits[:, map] for ImageNet-A/O)."""
    where = class_index(model_classes)
    missing = [c for c in subset_classes if c not in where]
    if missing:
        raise ValueError(f"classes not among the model's {len(where)} classes: {', '.join(missing[:5])}")
    return [where[c] for c in subset_classes]


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset; stored in checkpoints so a model can be rebuilt from them."""

    name: str
    num_classes: int
    in_chans: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)
