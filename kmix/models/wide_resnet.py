"""Wide Residual Networks for CIFAR-sized inputs (Zagoruyko & Komodakis, BMVC 2016): WRN-d-k has
(d-4)/6 pre-activation basic blocks per stage with 16k, 32k, 64k channels, optional dropout between
the two convolutions, and 1x1 conv shortcuts where the shape changes.
"""
from __future__ import annotations

import torch.nn as nn

from kmix.models.init import ResidualTrunk
from kmix.models.preact_resnet import PreActBlock
from kmix.models.registry import register_model

STEM_WIDTH = 16
STAGE_STRIDES = (1, 2, 2)


WideBlock = PreActBlock  # BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3 plus the identity or a 1x1 projection


class WideResNet(ResidualTrunk):
    """conv3x3(16) stem, three stages of wide blocks (strides 1, 2, 2), BN-ReLU, global pool, FC."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_chans: int = 3, dropout: float = 0.0):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1, got depth={depth!r}")
        if isinstance(widen, bool) or not isinstance(widen, int) or widen < 1:
            raise ValueError(f"WideResNet widen factor must be a positive int, got widen={widen!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        per_stage = (depth - 4) // 6
        layers, cin = [], STEM_WIDTH
        for stage, stride in enumerate(STAGE_STRIDES):
            width = STEM_WIDTH * widen * 2 ** stage
            for i in range(per_stage):
                layers.append(WideBlock(cin, width, stride if i == 0 else 1, dropout))
                cin = width
        stem = nn.Conv2d(in_chans, STEM_WIDTH, 3, padding=1, bias=False)
        self._assemble(stem, layers, cin, num_classes, preact_head=True)


@register_model("wide_resnet")
def wide_resnet(*, num_classes: int, in_chans: int = 3, depth: int = 16, widen: int = 8,
                dropout: float = 0.0) -> nn.Module:
    """Generic WRN-depth-widen (depth 6n+4)."""
    return WideResNet(depth, widen, num_classes, in_chans=in_chans, dropout=dropout)


@register_model("wrn16_8")
def wrn16_8(*, num_classes: int, in_chans: int = 3, dropout: float = 0.0) -> nn.Module:
    """WRN-16-8: 2 blocks per stage, 128/256/512 channels (~11.0M parameters)."""
    return WideResNet(16, 8, num_classes, in_chans=in_chans, dropout=dropout)
