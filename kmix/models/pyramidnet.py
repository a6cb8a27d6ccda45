"""PyramidNet for CIFAR-sized inputs (Han, Kim & Kim, "Deep Pyramidal Residual Networks", CVPR 2017).

Widths grow additively by alpha/N per residual unit (N units in all, unit k has round(16 + k*alpha/N)
channels, times 4 at a bottleneck's output); shortcuts are identities zero-padded to the new width,
with 2x2 average pooling where the unit downsamples. Units have no ReLU on the way in or out:
BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN (bottleneck) or BN-conv3x3-BN-ReLU-conv3x3-BN (basic).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kmix.models.init import kaiming_init
from kmix.models.registry import register_model

STEM_WIDTH = 16
STAGE_STRIDES = (1, 2, 2)
BOTTLENECK_EXPANSION = 4


class PyramidUnit(nn.Module):
    """One pyramidal residual unit (bottleneck or basic), zero-padded identity shortcut."""

    def __init__(self, cin: int, width: int, stride: int, bottleneck: bool):
        super().__init__()
        self.cout = width * (BOTTLENECK_EXPANSION if bottleneck else 1)
        if bottleneck:
            layers = [
                nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, self.cout, 1, bias=False), nn.BatchNorm2d(self.cout),
            ]
        else:
            layers = [
                nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            ]
        self.residual = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride > 1 else nn.Identity()
        self.pad_channels = self.cout - cin
        if self.pad_channels < 0:
            raise ValueError(f"a pyramidal unit cannot shrink channels ({cin} -> {self.cout})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x)
        if self.pad_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad_channels))  # zeros on the channel axis
        return self.residual(x) + shortcut


def pyramid_widths(depth: int, alpha: float, bottleneck: bool) -> list[int]:
    """Per-unit widths: round(16 + k * alpha / N) for k = 1..N, N = 3 * units per stage."""
    per_layer = 9 if bottleneck else 6
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < per_layer + 2 or (depth - 2) % per_layer:
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(f"PyramidNet ({kind}) depth must be {per_layer}n+2 with n >= 1, got depth={depth!r}")
    if not alpha > 0:
        raise ValueError(f"PyramidNet alpha must be > 0, got alpha={alpha!r}")
    n_units = 3 * ((depth - 2) // per_layer)
    return [int(round(STEM_WIDTH + k * alpha / n_units)) for k in range(1, n_units + 1)]


class PyramidNet(nn.Module):
    """Stem conv(3x3, 16)+BN, three stages of pyramidal units (strides 1, 2, 2), BN-ReLU, global pool, FC."""

    def __init__(self, depth: int, alpha: float, num_classes: int, in_chans: int = 3, bottleneck: bool = True):
        super().__init__()
        widths = pyramid_widths(depth, alpha, bottleneck)
        per_stage = len(widths) // 3
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_WIDTH))
        units, cin = [], STEM_WIDTH
        for k, width in enumerate(widths):
            stride = STAGE_STRIDES[k // per_stage] if k % per_stage == 0 else 1
            unit = PyramidUnit(cin, width, stride, bottleneck)
            units.append(unit)
            cin = unit.cout
        self.units = nn.Sequential(*units)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.units(self.stem(x))))



@register_model("pyramidnet")
def pyramidnet(*, num_classes: int, in_chans: int = 3, depth: int = 110, alpha: float = 64,
               bottleneck: bool = True) -> nn.Module:
    """Generic PyramidNet: depth 9n+2 (bottleneck) or 6n+2 (basic), additive widening alpha."""
    return PyramidNet(depth, alpha, num_classes, in_chans=in_chans, bottleneck=bottleneck)


@register_model("pyramidnet110")
def pyramidnet110(*, num_classes: int, in_chans: int = 3, alpha: float = 64) -> nn.Module:
    """PyramidNet-110, alpha 64, bottleneck (the CutMix paper's CIFAR ablation model)."""
    return PyramidNet(110, alpha, num_classes, in_chans=in_chans, bottleneck=True)


@register_model("pyramidnet200")
def pyramidnet200(*, num_classes: int, in_chans: int = 3, alpha: float = 240) -> nn.Module:
    """PyramidNet-200, alpha 240, bottleneck (the CutMix paper's main CIFAR model, 26.8M params)."""
    return PyramidNet(200, alpha, num_classes, in_chans=in_chans, bottleneck=True)
