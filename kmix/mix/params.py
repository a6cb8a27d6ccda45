"""The value object passed from sampling to applying."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def packed_width(k: int, boxes: bool) -> int:
    """Columns of a packed parameter tensor: index K, phi K[, weights K, boxes 4(K-1)]."""
    return 3 * k + 4 * (k - 1) if boxes else 2 * k


def pack_views(pack: torch.Tensor, k: int, boxes: bool):
    """(index, phi, weights, boxes) views of a packed int64 tensor (n, packed_width): index int64
    (n, K), phi and weights float64 (n, K) (their bit patterns are stored), boxes int64 (n, K-1, 4);
    weights and boxes are None without boxes."""
    n = pack.shape[0]
    if not boxes:
        index, phi = pack.split(k, dim=1)
        return index, phi.view(torch.float64), None, None
    index, phi, weights, box = pack.split([k, k, k, 4 * (k - 1)], dim=1)
    return index, phi.view(torch.float64), weights.view(torch.float64), box.view(n, k - 1, 4)


@dataclass(frozen=True)
class MixParams:
    """Per-sample mixing parameters for a batch of n images mixed K at a time.

    phi: (n, K) Dirichlet proportions (float64); index: (n, K) pool indices, column 0 the anchor;
    boxes: (n, K-1, 4) nested (y0, x0, y1, x1) boxes for CutMix-style mixing, None for Mixup.
    weights: optional (n, K) float64 exact pixel fraction of each slot (as `slot_weights(boxes)`),
    which the mixers' sampler computes from the box sides; None: computed from the boxes when applied.
    packed: set by the mixers' sampler (`sampling.sample_packed`) when phi, index, weights and boxes
    are views of this one int64 tensor; `to(device)` then moves them in one copy.
    """

    phi: torch.Tensor
    index: torch.Tensor
    boxes: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    packed: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to(self, device: torch.device | str) -> MixParams:
        """The parameters on `device` (self when they are there already): one copy when packed."""
        device = torch.device(device)
        fields = (self.phi, self.index, self.boxes, self.weights)
        if all(t.device == device for t in fields if t is not None):
            return self
        if self.packed is not None:
            packed = self.packed.to(device)
            index, phi, weights, boxes = pack_views(packed, self.index.shape[1], self.boxes is not None)
            return MixParams(phi=phi, index=index, boxes=boxes, weights=weights, packed=packed)
        move = (lambda t: None if t is None else t.to(device))
        return MixParams(phi=move(self.phi), index=move(self.index), boxes=move(self.boxes),
                         weights=move(self.weights))
