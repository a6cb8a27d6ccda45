"""Pre-activation ResNet for CIFAR-sized inputs (He, Zhang, Ren & Sun, "Identity Mappings in Deep
Residual Networks", ECCV 2016): BN-ReLU-conv units, clean identity paths, 1x1 conv projections only
where the shape changes; a 3x3 stem without pooling (the CIFAR variant used by the Mixup/CutMix papers).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.models.init import ResidualTrunk
from kmix.models.registry import register_model

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3 plus the identity (or a 1x1 projection of the pre-activated
    input); dropout between the convolutions is Wide ResNet's option (0 = none, as in PreActResNet)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.project is None else self.project(pre)
        out = self.dropout(F.relu(self.bn2(self.conv1(pre))))
        return self.conv2(out) + shortcut


class PreActResNet(ResidualTrunk):
    """conv3x3(64) stem, four stages of pre-activation basic blocks, BN-ReLU, global pool, FC."""

    def __init__(self, blocks_per_stage: tuple[int, ...], num_classes: int, in_chans: int = 3):
        super().__init__()
        if len(blocks_per_stage) != len(STAGE_WIDTHS) or min(blocks_per_stage) < 1:
            raise ValueError(f"blocks_per_stage must be 4 positive ints, got {blocks_per_stage!r}")
        layers, cin = [], STAGE_WIDTHS[0]
        for n, width, stride in zip(blocks_per_stage, STAGE_WIDTHS, STAGE_STRIDES):
            for i in range(n):
                layers.append(PreActBlock(cin, width, stride if i == 0 else 1))
                cin = width
        stem = nn.Conv2d(in_chans, STAGE_WIDTHS[0], 3, padding=1, bias=False)
        self._assemble(stem, layers, cin, num_classes, preact_head=True)


@register_model("preact_resnet18")
def preact_resnet18(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """PreActResNet-18 for 32x32 inputs (2-2-2-2 basic blocks, 64-512 channels)."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_chans=in_chans)
