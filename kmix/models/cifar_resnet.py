"""The classic CIFAR ResNets (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, sec. 4.2): a 3x3 conv(16) stem, three stages of n basic blocks with 16/32/64 channels
(depth 6n+2), option-A shortcuts (identity, subsampled and zero-padded on the channel axis where the
shape changes: no shortcut parameters), global pooling, FC. The fast models of CIFAR studies.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.models.init import ResidualTrunk
from kmix.models.registry import register_model

STAGE_WIDTHS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the option-A shortcut, then ReLU (post-activation, as the paper)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity; where the block downsamples, every `stride`-th pixel and zero channels appended."""
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(ResidualTrunk):
    """ResNet-(6n+2) for CIFAR: conv3x3(16)-BN-ReLU, 3 stages of n basic blocks, global pool, FC."""

    def __init__(self, depth: int, num_classes: int, in_chans: int = 3):
        super().__init__()
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got depth={depth!r}")
        n = (depth - 2) // 6
        layers, cin = [], STAGE_WIDTHS[0]
        for width, stride in zip(STAGE_WIDTHS, STAGE_STRIDES):
            for i in range(n):
                layers.append(BasicBlock(cin, width, stride if i == 0 else 1))
                cin = width
        stem = nn.Sequential(nn.Conv2d(in_chans, STAGE_WIDTHS[0], 3, padding=1, bias=False),
                             nn.BatchNorm2d(STAGE_WIDTHS[0]), nn.ReLU(inplace=True))
        self._assemble(stem, layers, cin, num_classes, preact_head=False)


@register_model("cifar_resnet")
def cifar_resnet(*, num_classes: int, in_chans: int = 3, depth: int = 20) -> nn.Module:
    """ResNet of any depth 6n+2 (He et al. 2016, CIFAR variant, option-A shortcuts)."""
    return CifarResNet(depth, num_classes, in_chans=in_chans)


@register_model("resnet20")
def resnet20(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNet-20 (3 blocks per stage, 0.27M parameters with 10 classes)."""
    return CifarResNet(20, num_classes, in_chans=in_chans)


@register_model("resnet32")
def resnet32(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNet-32 (5 blocks per stage, 0.46M)."""
    return CifarResNet(32, num_classes, in_chans=in_chans)


@register_model("resnet44")
def resnet44(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNet-44 (7 blocks per stage, 0.66M)."""
    return CifarResNet(44, num_classes, in_chans=in_chans)


@register_model("resnet56")
def resnet56(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNet-56 (9 blocks per stage, 0.85M)."""
    return CifarResNet(56, num_classes, in_chans=in_chans)


@register_model("resnet110")
def resnet110(*, num_classes: int, in_chans: int = 3) -> nn.Module:
    """ResNet-110 (18 blocks per stage, 1.7M)."""
    return CifarResNet(110, num_classes, in_chans=in_chans)
