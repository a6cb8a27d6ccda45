"""What every analysis command (eval, attack, landscape, ood) shares: dataset folder, evaluation subset, batching,
how to read a plain state_dict, seed, device; one field (and one help text) each."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from kmix.options import data_root_option, device_option, option, quiet_option


def limit_arg(text: str) -> int | None:
    """--limit N: N >= 0 images, 0 meaning all (None)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value or None


def limit_option(default: int | None) -> Any:
    """The evaluation-subset size field of a command whose default is `default` (None: all images)."""
    return field(default=default, kw_only=True, metadata={
        "help": "evaluate on a fixed random subset of this many images, 0 = all", "type": limit_arg,
        "default_text": str(default or "all")})


def batch_size_option(default: int) -> Any:
    """The images-per-forward-pass field of a command whose default is `default`."""
    return field(default=default, kw_only=True, metadata={"help": "images per forward pass"})


def model_classes_option() -> Any:
    """The class-order file field of the class-aware commands (eval, ood)."""
    return option(None, "file listing a plain state_dict model's class names/wnids in output order")


def num_classes_option() -> Any:
    """The class-count field of the class-aware commands (eval, ood)."""
    return option(None, "classes of a plain state_dict model",
                  default_text="len(--model-classes), else the rows of its last 2-D weight, i.e. the classifier")


@dataclass(kw_only=True)
class EvalOptions:
    """The evaluation data and model options every analysis config has (keyword-only, after its own fields)."""

    data_root: str | None = data_root_option()
    limit: int | None = limit_option(None)
    batch_size: int = batch_size_option(128)
    image_size: int | None = option(None, "image size for ImageFolder data (default: the checkpoint's input size)")
    arch: str | None = option(None, "treat the checkpoint as a plain state_dict of this model (a kmix registry name, "
                              "tv:NAME or timm:NAME), normalised with ImageNet mean/std",
                              default_text="a kmix checkpoint")  # plain state_dict: its registry/tv:/timm: name
    seed: int = option(0, "seed for the subset and random draws")
    device: str = device_option()
    quiet: bool = quiet_option(help="no progress bars or printed tables")
