"""A small CNN for the embedded digits data (and other tiny images): the quick-start model."""
from __future__ import annotations

import torch.nn as nn

from kmix.models.registry import register_model


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Two conv stages, global pooling, dropout and a linear classifier (~60k parameters at width 32)."""

    def __init__(self, num_classes: int, in_chans: int = 1, width: int = 32, dropout: float = 0.1):
        super().__init__()
        self.features = nn.Sequential(
            _block(in_chans, width), _block(width, width), nn.MaxPool2d(2),
            _block(width, 2 * width), _block(2 * width, 2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x)))


@register_model("small_cnn")
def small_cnn(*, num_classes: int, in_chans: int = 1, width: int = 32, dropout: float = 0.1) -> nn.Module:
    return SmallCNN(num_classes, in_chans=in_chans, width=width, dropout=dropout)
