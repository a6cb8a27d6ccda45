"""The eight DARTS candidate operations (Liu et al. 2019), shared by the PC-DARTS supernet and the evaluation net.

Every op maps (N, C, H, W) -> (N, C, ceil(H/stride), ceil(W/stride)), so any input size works
(16x16 digits, 32x32 CIFAR, odd sizes). `affine=False` is the search-time setting (no BN scale/shift).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Order matters: index 0 is 'none'; genotype derivation breaks op ties towards the lower index.
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN: the 1x1 preprocessing of cell inputs (and the stem-like blocks)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN (dil_conv_3x3 / dil_conv_5x5)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise, pointwise, BN) blocks; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine=affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine=affine),
        )


class Zero(nn.Module):
    """The 'none' op: zeros of the output shape (strided like the other ops)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve H and W with two offset 1x1 stride-2 convs (concatenated), so no pixel is skipped."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out < 2:
            raise ValueError(f"FactorizedReduce needs c_out >= 2, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # offset by one pixel, same size (odd sizes too)
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def build_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """Build candidate op `name` (one of PRIMITIVES) with `channels` in and out."""
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine=affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine=affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine=affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine=affine)
    raise ValueError(f"unknown DARTS op {name!r}; known: {', '.join(PRIMITIVES)}")


def preprocess_input(c_in: int, c_out: int, reduce_spatial: bool, affine: bool = True) -> nn.Module:
    """Bring a cell input to `c_out` channels (and halve it when the previous cell kept the larger size)."""
    if reduce_spatial:
        return FactorizedReduce(c_in, c_out, affine=affine)
    return ReLUConvBN(c_in, c_out, 1, 1, 0, affine=affine)
