"""kmix: K-image mixing augmentation (DMixup, DCutMix, Saliency-DCutMix) and what it makes possible."""
from kmix.mix import DCutMix, DMixup, MixCollate, SaliencyDCutMix, SoftTargetCrossEntropy

__version__ = "0.1.0"
__all__ = ["DCutMix", "DMixup", "MixCollate", "SaliencyDCutMix", "SoftTargetCrossEntropy", "__version__"]
