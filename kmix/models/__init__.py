"""Models: kmix's CIFAR/digits networks, a registry that also names torchvision/timm models."""
from kmix.models.normalize import Normalized
from kmix.models.registry import build_model, list_models, register_model

__all__ = ["Normalized", "build_model", "list_models", "register_model"]
