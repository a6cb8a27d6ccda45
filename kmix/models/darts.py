"""The DARTS evaluation network built from a searched genotype (Liu et al. 2019), registered as model "darts".

CIFAR setting: 20 cells, C=36, auxiliary head after the second reduction cell, drop-path.
ImageNet setting: `stem="imagenet"` (three stride-2 convs), 14 cells, C=48.
In train mode with `auxiliary=True` forward returns (logits, aux_logits); in eval mode, logits.
The trainer sets `drop_path_prob` each epoch (e.g. drop_path * epoch / epochs).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from kmix.models.darts_genotype import Genotype, GenotypeLike, load_genotype
from kmix.models.darts_ops import build_op, preprocess_input
from kmix.models.registry import register_model


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a branch with probability `drop_prob`, rescaling the kept ones."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    """One cell of the discrete network: each node sums two ops applied to earlier states."""

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        edges = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.preprocess0 = preprocess_input(c_prev_prev, channels, reduce_spatial=reduction_prev)
        self.preprocess1 = preprocess_input(c_prev, channels, reduce_spatial=False)
        self.inputs = [idx for _, idx in edges]
        self.ops = nn.ModuleList(
            build_op(op, channels, stride=2 if reduction and idx < 2 else 1) for op, idx in edges
        )
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = 0
            for e in (2 * node, 2 * node + 1):
                op = self.ops[e]
                h = op(states[self.inputs[e]])
                if self.training and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at 2/3 depth: pool, 1x1 conv to 128, 2x2 conv to 768, linear.

    DARTS pools with a 5x5 window (stride 3 on CIFAR's 8x8 maps, stride 2 on ImageNet's 14x14);
    maps smaller than 5x5 (e.g. 16x16 digits) skip that pooling, and a global pool makes any size work.
    """

    def __init__(self, channels: int, num_classes: int, pool_stride: int = 3):
        super().__init__()
        self.pool_stride = pool_stride
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False, padding=0), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        if min(x.shape[-2:]) >= 5:
            x = nn.functional.avg_pool2d(x, 5, stride=self.pool_stride, count_include_pad=False)
        if min(x.shape[-2:]) < 2:
            x = nn.functional.pad(x, (0, 1, 0, 1))
        return self.classifier(self.features(x))


class DartsNetwork(nn.Module):
    """Stack of `layers` cells from `genotype`, reduction cells at 1/3 and 2/3 depth, then pool + linear."""

    def __init__(self, genotype: GenotypeLike, num_classes: int, in_chans: int = 3, layers: int = 20,
                 channels: int = 36, auxiliary: bool = True, drop_path: float = 0.2, stem: str = "cifar"):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if channels < 2:
            raise ValueError(f"channels must be >= 2, got {channels}")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.genotype = load_genotype(genotype)
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path)  # the trainer overwrites this every epoch
        self.stem_kind = stem
        c = channels
        if stem == "cifar":
            self.stem0 = nn.Sequential(nn.Conv2d(in_chans, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c))
            self.stem1 = nn.Identity()
            c_pp, c_p, reduction_prev = 3 * c, 3 * c, False
        else:
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_chans, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
            )
            c_pp, c_p, reduction_prev = c, c, True
        reduce_at = {layers // 3, 2 * layers // 3}
        self.aux_index = 2 * layers // 3
        c_curr = c
        self.cells = nn.ModuleList()
        c_aux = None
        for i in range(layers):
            reduction = i in reduce_at
            if reduction:
                c_curr *= 2
            cell = EvalCell(self.genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_p
        self.aux_head = (
            AuxiliaryHead(c_aux, num_classes, pool_stride=3 if stem == "cifar" else 2) if auxiliary else None
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1)
        logits = self.classifier(self.global_pool(s1).flatten(1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits


@register_model("darts")
def darts(*, num_classes: int, in_chans: int = 3, genotype: GenotypeLike | None = None, layers: int = 20,
          channels: int = 36, auxiliary: bool = True, drop_path: float = 0.2, stem: str = "cifar") -> nn.Module:
    """DARTS evaluation net from `genotype` (dict, Genotype or JSON path). CIFAR: 20 cells, C=36; ImageNet: 14, 48, stem='imagenet'."""
    if genotype is None:
        raise ValueError("model 'darts' needs a genotype: pass --genotype FILE.json (from `kmix search`)")
    return DartsNetwork(genotype, num_classes, in_chans=in_chans, layers=layers, channels=channels,
                        auxiliary=auxiliary, drop_path=drop_path, stem=stem)
