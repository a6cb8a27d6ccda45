"""The K-image mixing core: sampling parameters (torch draws, numpy arithmetic on CPU draws), applying them (torch), the
mixer classes, and the field's two-image baselines (Mixup, CutMix) that share the same apply."""
from kmix.mix.apply import apply_cutmix, apply_mixup, box_depth_map, mix_labels, slot_weights, source_map
from kmix.mix.baselines import CutMix, Mixup, TwoImageMix, clipped_boxes, sample_beta
from kmix.mix.collate import MixCollate
from kmix.mix.loss import SoftTargetCrossEntropy
from kmix.mix.mixers import DCutMix, DMixup, KImageMix, SaliencyDCutMix
from kmix.mix.params import MixParams
from kmix.mix.registry import MIX_NAMES, MIX_VERSION, MIXER_REGISTRY, MIXERS, TWO_IMAGE_MIXERS, mixer_label
from kmix.mix.saliency import saliency_peaks, spectral_residual_saliency
from kmix.mix.sampling import (PARTNERS, box_sizes, place_boxes, sample_boxes, sample_dirichlet, sample_partners,
                               stick_breaking)
from kmix.mix.targets import check_batch, soft_targets

__all__ = [
    "CutMix", "DCutMix", "DMixup", "KImageMix", "MIXERS", "MIXER_REGISTRY", "MIX_NAMES", "MIX_VERSION", "MixCollate",
    "MixParams", "Mixup", "PARTNERS", "SaliencyDCutMix", "TWO_IMAGE_MIXERS", "TwoImageMix", "clipped_boxes",
    "mixer_label", "sample_beta",
    "SoftTargetCrossEntropy", "apply_cutmix", "apply_mixup", "box_depth_map", "box_sizes", "check_batch",
    "mix_labels", "place_boxes", "saliency_peaks", "sample_boxes", "sample_dirichlet", "sample_partners",
    "slot_weights", "soft_targets", "source_map", "spectral_residual_saliency", "stick_breaking",
]
