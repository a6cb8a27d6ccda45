"""One registry of model builders: kmix's own CIFAR/digits models plus torchvision/timm by name."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `fn(num_classes=..., in_chans=..., **kwargs) -> nn.Module` under `name`."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names kmix builds itself (torchvision names as `tv:NAME`, timm names as `timm:NAME` also work)."""
    _import_builtin()
    return sorted(_BUILDERS)


def build_model(name: str, *, num_classes: int, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a model by registry name, `tv:<torchvision name>` or `timm:<timm name>` (no weights)."""
    _import_builtin()
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if name in _BUILDERS:
        return _BUILDERS[name](num_classes=num_classes, in_chans=in_chans, **kwargs)
    if name.startswith("tv:"):
        import torchvision

        try:
            builder = torchvision.models.get_model_builder(name[3:])
        except ValueError as err:
            raise ValueError(f"unknown torchvision model {name[3:]!r}") from err
        if in_chans != 3:
            raise ValueError(f"torchvision model {name!r} needs 3 input channels, got in_chans={in_chans}")
        return builder(weights=None, num_classes=num_classes, **kwargs)
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError as err:
            raise ValueError(f"model {name!r} needs timm: pip install 'kmix[imagenet]'") from err
        if not timm.is_model(name[5:]):
            raise ValueError(f"unknown timm model {name[5:]!r}")
        return timm.create_model(name[5:], pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    raise ValueError(
        f"unknown model {name!r}; known: {', '.join(list_models())} (or tv:NAME / timm:NAME)"
    )


# modules under kmix.models whose import registers builders (via @register_model)
_BUILTIN_MODULES = ("small_cnn", "pyramidnet", "preact_resnet", "cifar_resnet", "wide_resnet", "resnext", "darts")


def _import_builtin() -> None:
    import importlib

    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"kmix.models.{mod}")
        except ModuleNotFoundError as err:  # a model family not written yet
            if err.name != f"kmix.models.{mod}":
                raise
