"""What the CIFAR ResNet family shares: He et al.'s initialisation and the stem-blocks-head-fc skeleton."""
from __future__ import annotations

import torch.nn as nn


def kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions, unit/zero BatchNorm, zero classifier bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


class ResidualTrunk(nn.Module):
    """stem -> residual blocks -> head (optional BN-ReLU, global pool) -> fc: the CIFAR ResNets' skeleton."""

    def _assemble(self, stem: nn.Module, layers: list[nn.Module], features: int, num_classes: int, *,
                  preact_head: bool) -> None:
        """Set the parts (pre-activation nets end with BN-ReLU before pooling) and initialise the weights."""
        self.stem = stem
        self.blocks = nn.Sequential(*layers)
        norm = [nn.BatchNorm2d(features), nn.ReLU(inplace=True)] if preact_head else []
        self.head = nn.Sequential(*norm, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(features, num_classes)
        self.num_features = features
        kaiming_init(self)

    def forward(self, x):
        return self.fc(self.head(self.blocks(self.stem(x))))
