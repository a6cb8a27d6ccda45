"""Load the models the analyses run on: kmix checkpoints, or a plain torchvision/timm state_dict + `arch`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from kmix.devices import resolve_device  # noqa: F401 (the analysis commands import it from here)
from kmix.models import Normalized, build_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """A model taking [0, 1] images (normalisation inside), in eval mode, plus what the analyses need to know."""

    model: nn.Module
    label: str  # short name for tables and legends (the file stem)
    arch: str  # registry name + kwargs: equal arch => a gray-box substitute, else black-box
    num_classes: int
    class_names: tuple[str, ...] = field(default=())
    meta: dict[str, Any] = field(default_factory=dict)


def unique_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short distinct names for checkpoint files: the stem ('a' for a.pt), with parent folders prepended
    when stems repeat ('none_s0/last.pt' and 'dcutmix_s0/last.pt' -> 'none_s0_last', 'dcutmix_s0_last')."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(len(x) for x in parts) + 1):
        labels = ["_".join(x[-depth:]) for x in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i}_{'_'.join(x)}" for i, x in enumerate(parts)]  # the same file given twice


def _arch_key(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    return name + "(" + ", ".join(f"{k}={kwargs[k]!r}" for k in sorted(kwargs)) + ")"


def load_analysis_model(path: str | os.PathLike, *, arch: str | None = None, num_classes: int | None = None,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        class_names: Sequence[str] | None = None,
                        device: str | torch.device = "cpu") -> LoadedModel:
    """Load a kmix checkpoint (arch=None) or a plain state_dict file built as `arch` (e.g. 'tv:resnet50').

    A plain state_dict has no metadata: num_classes defaults to len(class_names) or the rows of the last 2-D
    weight (the classifier), mean/std to ImageNet's, so the returned model still takes [0, 1] images.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    dev = resolve_device(device)
    if arch is None:
        from kmix.train.checkpoint import load_model

        model, meta = load_model(path, map_location="cpu")
        names = tuple(meta.get("data", {}).get("class_names", ()) or ())
        if class_names is not None:
            names = tuple(class_names)
        return LoadedModel(model.to(dev).eval(), path.stem, _arch_key(meta["name"], meta.get("kwargs", {})),
                           int(meta["num_classes"]), names, meta)
    return _load_plain(path, arch, num_classes, mean, std, class_names, dev)


def _classifier_rows(state: dict[str, torch.Tensor]) -> int:
    """Output classes of a plain classifier state_dict: rows of its last 2-D weight (fc/head/classifier), else 1000."""
    for key in reversed(list(state)):
        if key.endswith("weight") and state[key].dim() == 2:
            return int(state[key].shape[0])
    return 1000


def _load_plain(path: Path, arch: str, num_classes: int | None, mean, std, class_names, dev) -> LoadedModel:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is not a readable torch state_dict: {err}") from err
    for key in ("state_dict", "model"):  # common wrappers around a state_dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} is not a state_dict (name -> tensor) for arch {arch!r}")
    names = tuple(class_names or ())
    if num_classes is None:
        num_classes = len(names) if names else _classifier_rows(state)
    if names and len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries but num_classes={num_classes}")
    mean = tuple(mean) if mean is not None else IMAGENET_MEAN
    std = tuple(std) if std is not None else IMAGENET_STD
    net = build_model(arch, num_classes=num_classes, in_chans=len(mean))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"state_dict {path} does not fit arch {arch!r} with num_classes={num_classes}: {err}") from err
    meta = {"name": arch, "num_classes": num_classes, "in_chans": len(mean), "mean": list(mean), "std": list(std),
            "kwargs": {}, "data": {"class_names": list(names)}}
    return LoadedModel(Normalized(net, mean, std).to(dev).eval(), path.stem, arch, num_classes, names, meta)


def setup_eval(cfg) -> tuple[torch.device, LoadedModel, list[str] | None]:
    """Shared start of `kmix eval` / `kmix ood`: check the batch size, pick the device, load the
    model (kmix checkpoint or plain state_dict with cfg.arch) and the optional class-subset file."""
    from kmix.analysis.classes import load_class_list

    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    device = resolve_device(cfg.device)
    names = load_class_list(cfg.model_classes) if cfg.model_classes else None
    model = load_analysis_model(cfg.checkpoint, arch=cfg.arch, num_classes=cfg.num_classes, class_names=names,
                                device=device)
    subset = load_class_list(cfg.classes) if cfg.classes else None
    return device, model, subset
