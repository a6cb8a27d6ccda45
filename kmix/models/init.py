"""The weight initialisation the CIFAR ResNet family papers use (He et al.): one place for all models."""
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
