"""kmix: K-image mixing augmentation (DMixup, DCutMix, Saliency-DCutMix), the field's Mixup and CutMix beside
them, and what it makes possible."""
from kmix.mix import CutMix, DCutMix, DMixup, MixCollate, Mixup, SaliencyDCutMix, SoftTargetCrossEntropy

__version__ = "0.1.0"
__all__ = ["CutMix", "DCutMix", "DMixup", "MixCollate", "Mixup", "SaliencyDCutMix", "SoftTargetCrossEntropy",
           "__version__"]
