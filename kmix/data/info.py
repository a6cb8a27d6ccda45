"""What a model needs to know about a dataset: classes, channels, size, normalisation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
