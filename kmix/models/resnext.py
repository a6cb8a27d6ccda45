"""ResNeXt for CIFAR-sized inputs (Xie, Girshick, Dollar, Tu & He, "Aggregated Residual
Transformations", CVPR 2017): depth 9n+2, three stages of bottleneck blocks whose 3x3 convolution is
split into `cardinality` groups of `base_width * 2**stage` channels each; outputs 256, 512, 1024.
Post-activation blocks (conv-BN-ReLU), 1x1 conv+BN shortcuts where the shape changes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.models.init import ResidualTrunk
from kmix.models.registry import register_model

STEM_WIDTH = 64
STAGE_OUT = (256, 512, 1024)
STAGE_STRIDES = (1, 2, 2)


class ResNeXtBlock(nn.Module):
    """conv1x1-BN-ReLU, grouped conv3x3-BN-ReLU, conv1x1-BN, add shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, cardinality: int, group_width: int):
        super().__init__()
        inner = cardinality * group_width
        self.residual = nn.Sequential(
            nn.Conv2d(cin, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


class ResNeXt(ResidualTrunk):
    """conv3x3(64)-BN-ReLU stem, three stages of ResNeXt blocks, global pool, FC."""

    def __init__(self, depth: int, cardinality: int, base_width: int, num_classes: int, in_chans: int = 3):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
            raise ValueError(f"ResNeXt depth must be 9n+2 with n >= 1, got depth={depth!r}")
        for name, value in (("cardinality", cardinality), ("base_width", base_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ResNeXt {name} must be a positive int, got {name}={value!r}")
        per_stage = (depth - 2) // 9
        layers, cin = [], STEM_WIDTH
        for stage, (cout, stride) in enumerate(zip(STAGE_OUT, STAGE_STRIDES)):
            for i in range(per_stage):
                layers.append(ResNeXtBlock(cin, cout, stride if i == 0 else 1, cardinality, base_width * 2 ** stage))
                cin = cout
        stem = nn.Sequential(
            nn.Conv2d(in_chans, STEM_WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_WIDTH), nn.ReLU(inplace=True)
        )
        self._assemble(stem, layers, cin, num_classes, preact_head=False)


@register_model("resnext")
def resnext(*, num_classes: int, in_chans: int = 3, depth: int = 29, cardinality: int = 4,
            base_width: int = 24) -> nn.Module:
    """Generic CIFAR ResNeXt-depth (cardinality x base_width d)."""
    return ResNeXt(depth, cardinality, base_width, num_classes, in_chans=in_chans)


@register_model("resnext29_4x24d")
def resnext29_4x24d(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNeXt-29 (4x24d): 3 blocks per stage, 4 groups of 24/48/96 channels."""
    return ResNeXt(29, 4, 24, num_classes, in_chans=in_chans)
