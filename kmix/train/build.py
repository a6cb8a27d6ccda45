"""Turn a TrainConfig into the run's parts: device, datasets, model, mixer, optimizer, schedule, AMP."""
from __future__ import annotations

import sys

import contextlib
from typing import Any

import torch
import torch.nn as nn

from kmix.mix import MIXER_REGISTRY
from kmix.mix.mixers import KImageMix
from kmix.models import Normalized, build_model
from kmix.train.config import TrainConfig
from kmix.train.schedule import LRMultiplier


def check_amp(amp: str, device: torch.device) -> None:
    """fp16 needs CUDA (GradScaler); bf16 works on CPU and CUDA."""
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA device; on CPU use --amp bf16 or --amp none")


def autocast(amp: str, device: torch.device):
    """The autocast context for `amp` ('none' -> a no-op context)."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """config.model_kwargs plus the genotype (a dict, or loaded from a JSON file) under 'genotype'.

    The genotype is validated here (errors name the file and the bad entry), so a bad file fails
    before any data is loaded.
    """
    kwargs = dict(config.model_kwargs)
    if config.genotype is not None:
        from kmix.models.darts_genotype import load_genotype

        kwargs["genotype"] = load_genotype(config.genotype).to_dict()
    return kwargs


def norm_stats(config: TrainConfig, info) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model normalises its [0, 1] input with: config.norm_mean/norm_std, each defaulting to the
    dataset's own (info.mean/info.std); a ValueError names the field whose length is not the dataset's channels."""
    stats = []
    for name, own in (("norm_mean", info.mean), ("norm_std", info.std)):
        value = getattr(config, name)
        if value is not None and len(value) != info.in_chans:
            raise ValueError(f"{name} must have one value per channel of {config.data} ({info.in_chans}), "
                             f"got {len(value)}: {list(value)}")
        stats.append(tuple(own) if value is None else tuple(float(v) for v in value))
    return stats[0], stats[1]


def build_network(config: TrainConfig, info, model_kwargs: dict[str, Any]) -> Normalized:
    """The registry model for the dataset, wrapped so that it takes [0, 1] images (normalised by `norm_stats`)."""
    net = build_model(config.model, num_classes=info.num_classes, in_chans=info.in_chans, **model_kwargs)
    return Normalized(net, *norm_stats(config, info))


def build_mixer(config: TrainConfig, num_classes: int, generator: torch.Generator) -> KImageMix | None:
    """The mixer named by config.mix (None for 'none'), drawing from `generator`."""
    if config.mix == "none":
        return None
    entry = MIXER_REGISTRY[config.mix]
    common = dict(alpha=config.alpha, p=config.p, label_smoothing=config.label_smoothing, generator=generator)
    if entry.two_image:  # the field's Mixup / CutMix
        return entry.cls(num_classes, mode=config.mix_mode, **common)
    return entry.cls(num_classes=num_classes, k=config.k, partners=config.partners, **common)


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum and weight decay on every parameter, as in the CutMix recipes."""
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """A per-step LambdaLR following config.schedule (step decay, cosine or constant, with warmup)."""
    factor = LRMultiplier(config.schedule, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                          milestones=config.milestones, gamma=config.gamma, warmup_epochs=config.warmup_epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def compute_loss(output, target: torch.Tensor, criterion: nn.Module, aux_weight: float) -> torch.Tensor:
    """criterion(logits) [+ aux_weight * criterion(aux_logits) when the model returns (logits, aux)]."""
    if isinstance(output, (tuple, list)):
        logits, aux = output[0], (output[1] if len(output) > 1 else None)
        loss = criterion(logits, target)
        if aux is not None:  # also with weight 0: keeps the aux head in the graph, which DDP requires
            loss = loss + aux_weight * criterion(aux, target)
        return loss
    return criterion(output, target)


def warn_if_partners_repeat(mixer, pool: int, is_main: bool) -> None:
    """Warn (rank 0) when a sample's K partners must repeat: one mixing call draws from `pool` images
    (batch per process x prepare_steps)."""
    if mixer is not None and mixer.k > pool and is_main:
        print(f"kmix train: warning: k={mixer.k} images per sample from a pool of {pool} (batch per process "
              f"x prepare_steps): partners repeat within a sample; use k <= {pool} or a larger batch", file=sys.stderr)
