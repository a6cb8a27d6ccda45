"""Anchored K-image DCutMix parameters for uncertainty scoring: the anchor's proportion is fixed.

The anchor sits in slot 0 of the stick-breaking, i.e. the outer region of the nested boxes: box 1
has side round(side * sqrt(1 - phi_anchor)), so the anchor's pixel fraction is 1 - area(box 1) / HW,
which equals phi_anchor up to box rounding and is the *same* in every draw. The other K-1
proportions are phi_rest = (1 - phi_anchor) * Dirichlet(alpha_rest), and their boxes are drawn and
placed by the mixing core's own sampler (`kmix.mix.sample_boxes`); composites are made by
`kmix.mix.apply_cutmix`. Nothing here re-implements DCutMix.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from kmix.mix import MixParams, sample_boxes, sample_dirichlet
from kmix.runs import Stream, generator_for


def default_anchor_phi(alpha_rest: Sequence[float]) -> float:
    """Mean of the anchor's marginal Beta when the anchor's own alpha is the mean of `alpha_rest`.

    Under Dirichlet(a_1, ..., a_K) the anchor's proportion is Beta(a_1, sum_{j>1} a_j), mean
    a_1 / sum_j a_j. With the paper's (2/9, 2/9) for K=3 this is 1/3.
    """
    rest = [float(a) for a in alpha_rest]
    a_anchor = sum(rest) / len(rest)
    return a_anchor / (a_anchor + sum(rest))


def chunk_generator(seed: int, chunk_id: int) -> torch.Generator:
    """A CPU generator for chunk `chunk_id` of a run seeded `seed` (independent streams per chunk)."""
    return generator_for(Stream.ANCHOR, seed, chunk_id)


@dataclass(frozen=True)
class AnchoredSampler:
    """Draws `draws` DCutMix composites per anchor: the anchor fixed at phi_anchor in slot 0, partners
    from the whole dataset.

    k: images per composite; alpha_rest: K-1 Dirichlet concentrations of the non-anchor slots;
    anchor_phi: the anchor's fixed proportion in (0, 1); height/width: image size.
    """

    k: int
    alpha_rest: tuple[float, ...]
    anchor_phi: float
    height: int
    width: int

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ValueError(f"k must be an int >= 2, got {self.k!r}")
        if len(self.alpha_rest) != self.k - 1:
            raise ValueError(f"alpha must have k-1={self.k - 1} values (one per non-anchor image), "
                             f"got {len(self.alpha_rest)}: {list(self.alpha_rest)}")
        if not all(0 < a < float("inf") for a in self.alpha_rest):
            raise ValueError(f"alpha must be positive and finite, got {list(self.alpha_rest)}")
        if not 0.0 < self.anchor_phi < 1.0:
            raise ValueError(f"anchor_phi must be in (0, 1), got {self.anchor_phi!r}")

    def sample(self, anchors: torch.Tensor, draws: int, dataset_size: int,
               generator: torch.Generator | None = None) -> MixParams:
        """MixParams for len(anchors) * draws composites, anchor-major (row a * draws + m).

        index[:, 0] is the anchor's dataset index; index[:, 1:] are uniform over the dataset
        minus the anchor (partners of one composite may repeat each other, never the anchor).
        """
        if dataset_size < 2:
            raise ValueError(f"scoring needs a dataset of at least 2 images, got {dataset_size}")
        anchor_col = anchors.to(torch.long).repeat_interleave(draws)  # (n,)
        n = anchor_col.numel()
        rest = sample_dirichlet(n, torch.tensor(self.alpha_rest, dtype=torch.float64), generator).double()
        anchor = torch.full((n, 1), self.anchor_phi, dtype=torch.float64)  # float64 like the core's proportions
        phi = torch.cat([anchor, (1.0 - self.anchor_phi) * rest], dim=1)
        raw = torch.randint(0, dataset_size - 1, (n, self.k - 1), generator=generator)
        partners = raw + (raw >= anchor_col[:, None]).long()  # skip the anchor itself
        index = torch.cat([anchor_col[:, None], partners], dim=1)
        boxes = sample_boxes(phi, self.height, self.width, generator)
        return MixParams(phi=phi, index=index, boxes=boxes)
