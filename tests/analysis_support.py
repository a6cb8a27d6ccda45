"""Helpers for the analysis tests (not a test module): small digits checkpoints trained inline, without kmix.train.fit."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from kmix.data.digits import DIGITS_INFO, DigitsDataset
from kmix.models import Normalized, build_model
from kmix.train.checkpoint import model_meta, save_checkpoint


@lru_cache(maxsize=2)
def digits(train: bool) -> DigitsDataset:
    return DigitsDataset(train=train)


def train_digits_checkpoint(path: Path, *, seed: int = 0, steps: int = 60, width: int = 8,
                            arch: str = "small_cnn") -> Path:
    """A few SGD steps of small_cnn on digits (about a second), saved as a kmix checkpoint."""
    torch.manual_seed(seed)
    kwargs = {"width": width} if arch == "small_cnn" else {}
    net = build_model(arch, num_classes=10, in_chans=1, **kwargs)
    model = Normalized(net, DIGITS_INFO.mean, DIGITS_INFO.std)
    data = digits(True)
    x, y = data.tensors
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta(arch, DIGITS_INFO, **kwargs)})
    return path
