"""The one list of mixer names, in kmix's order (vanilla first): what training, `kmix show`, the sweep table,
recipes and docs read. Mixup and CutMix are the K=2 cases of DMixup and DCutMix."""
from __future__ import annotations

from dataclasses import dataclass

from kmix.mix.mixers import DCutMix, DMixup, KImageMix, SaliencyDCutMix


@dataclass(frozen=True)
class MixerEntry:
    """A mixer name: its class (None: no mixing) and its fixed K (None: the configured k)."""

    cls: type[KImageMix] | None
    fixed_k: int | None
    summary: str


MIXER_REGISTRY: dict[str, MixerEntry] = {
    "none": MixerEntry(None, None, "no mixing (vanilla training)"),
    "mixup": MixerEntry(DMixup, 2, "Mixup: DMixup with K=2"),
    "cutmix": MixerEntry(DCutMix, 2, "CutMix: DCutMix with K=2"),
    "dmixup": MixerEntry(DMixup, None, "K images blended with Dirichlet weights"),
    "dcutmix": MixerEntry(DCutMix, None, "K images pasted as nested boxes with Dirichlet areas"),
    "saliency-dcutmix": MixerEntry(SaliencyDCutMix, None, "DCutMix with boxes moved onto salient regions"),
}
MIX_NAMES = tuple(MIXER_REGISTRY)
# the K-image mixers (any K): what `kmix show` draws
MIXERS: dict[str, type[KImageMix]] = {n: e.cls for n, e in MIXER_REGISTRY.items() if e.cls and e.fixed_k is None}
