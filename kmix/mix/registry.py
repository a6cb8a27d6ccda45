"""The one list of mixer names, in kmix's order (vanilla first): what training, `kmix show`, the sweep table,
recipes and docs read.

`mixup` and `cutmix` are the field's two-image methods (Zhang et al.; Yun et al.: one lambda per batch,
CutMix's box clipped at the border), the baselines the paper compares against. The paper's own K = 2
cases are `dmixup` / `dcutmix` with k = 2 (DCutMix K=2 puts its box fully inside the image): a
different mixer, labelled so by `mixer_label`.

MIX_VERSION says which definitions a run used: run configs written before it existed (version 1)
named DMixup K=2 `mixup` and DCutMix K=2 `cutmix`; `kmix.train.config.upgrade_run_config` renames them.
"""
from __future__ import annotations

from dataclasses import dataclass

from kmix.mix.baselines import CutMix, Mixup, TwoImageMix
from kmix.mix.mixers import DCutMix, DMixup, KImageMix, SaliencyDCutMix

MIX_VERSION = 2  # 1: mixup/cutmix were DMixup/DCutMix with K=2; 2: they are the field's Mixup/CutMix


@dataclass(frozen=True)
class MixerEntry:
    """A mixer name: its class (None: no mixing), its fixed K (None: the configured k), a one-line summary."""

    cls: type[KImageMix] | None
    fixed_k: int | None
    summary: str

    @property
    def two_image(self) -> bool:
        """The field's two-image mixers (a Beta alpha and a batch/elem mode; no `k`, no `partners`)."""
        return self.cls is not None and issubclass(self.cls, TwoImageMix)


MIXER_REGISTRY: dict[str, MixerEntry] = {
    "none": MixerEntry(None, None, "no mixing (vanilla training)"),
    "mixup": MixerEntry(Mixup, 2, "Mixup (Zhang et al.): lambda ~ Beta(alpha, alpha) per batch (or per sample)"),
    "cutmix": MixerEntry(CutMix, 2, "CutMix (Yun et al.): box centre uniform over the image, clipped at the border"),
    "dmixup": MixerEntry(DMixup, None, "K images blended with Dirichlet weights"),
    "dcutmix": MixerEntry(DCutMix, None, "K images pasted as nested boxes with Dirichlet areas (boxes inside)"),
    "saliency-dcutmix": MixerEntry(SaliencyDCutMix, None, "DCutMix with boxes moved onto salient regions"),
}
MIX_NAMES = tuple(MIXER_REGISTRY)
# the K-image mixers (any K): what `kmix show` draws besides the field's two
MIXERS: dict[str, type[KImageMix]] = {n: e.cls for n, e in MIXER_REGISTRY.items() if e.cls and e.fixed_k is None}
TWO_IMAGE_MIXERS: dict[str, type[TwoImageMix]] = {n: e.cls for n, e in MIXER_REGISTRY.items() if e.two_image}


def mixer_label(mix: str, k: int | None = None) -> str:
    """A mixer's name for tables and plots: 'vanilla'; 'cutmix' (the field's); the paper's K=2 cases say
    so ('dcutmix K=2 (box inside)'), so that no reader takes them for the field's CutMix or Mixup."""
    if mix == "none":
        return "vanilla"
    if k == 2 and mix in ("dcutmix", "saliency-dcutmix"):
        return f"{mix} K=2 (box inside)"
    if k == 2 and mix == "dmixup":
        return "dmixup K=2 (per-sample)"
    return mix
