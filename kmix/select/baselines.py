"""Subsampling baselines that need the model: MC-dropout predictive entropy and k-center greedy coresets.

Both hook the model's last `nn.Linear` (taken to be the classifier): its input is the penultimate
feature vector, and a model without dropout gets functional dropout right there for MC-dropout.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


def last_linear(model: nn.Module) -> nn.Linear:
    """The last nn.Linear in `model.modules()` order: the classifier of kmix/torchvision/timm models."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model {type(model).__name__} has no nn.Linear classifier to hook")
    return linears[-1]


def _batches(dataset: Dataset, batch_size: int, device, quiet: bool, desc: str):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, _ in tqdm(loader, disable=quiet, desc=desc, unit="batch"):
        yield x.to(device)


@torch.inference_mode()
def penultimate_features(model: nn.Module, dataset: Dataset, *, batch_size: int = 256,
                         device: str | torch.device = "cpu", quiet: bool = True) -> torch.Tensor:
    """Inputs (N, D) of the last nn.Linear for every image, model in eval mode."""
    model = model.to(device).eval()
    feats: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].flatten(1).cpu()))
    try:
        for x in _batches(dataset, batch_size, device, quiet, "features"):
            model(x)
    finally:
        handle.remove()
    return torch.cat(feats).float()


@torch.inference_mode()
def mc_dropout_entropy(model: nn.Module, dataset: Dataset, *, passes: int = 10, p: float = 0.5, seed: int = 0,
                       batch_size: int = 256, device: str | torch.device = "cpu", quiet: bool = True
                       ) -> torch.Tensor:
    """Predictive entropy (N,) of the mean softmax over `passes` stochastic passes (nats; high = uncertain).

    BatchNorm and everything else stay in eval mode; the model's own dropout layers (p > 0) are
    switched on, or, when it has none, dropout with rate `p` is applied to the classifier's input.
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 2:
        raise ValueError(f"passes must be an int >= 2, got {passes!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout p must be in (0, 1), got {p!r}")
    device = torch.device(device)
    model = model.to(device).eval()
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    handle = None
    if dropouts:
        for m in dropouts:
            m.train()
    else:
        handle = last_linear(model).register_forward_pre_hook(
            lambda mod, inp: (F.dropout(inp[0], p, training=True),))
    out = []
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for x in _batches(dataset, batch_size, device, quiet, "mc-dropout"):
                probs = torch.stack([F.softmax(model(x).float(), -1) for _ in range(passes)]).mean(0)
                out.append(-(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).cpu())
    finally:
        model.eval()
        if handle is not None:
            handle.remove()
    return torch.cat(out)


def k_center_greedy(features: torch.Tensor, n_select: int) -> list[int]:
    """Greedy k-center: start at the point nearest the mean, then repeatedly add the point farthest
    from the chosen set (ties: lowest position). Returns positions into `features` in pick order."""
    n = features.shape[0]
    if not 1 <= n_select <= n:
        raise ValueError(f"n_select must be in [1, {n}], got {n_select}")
    x = features.double()
    first = int(torch.cdist(x.mean(0, keepdim=True), x)[0].argmin())
    chosen = [first]
    min_dist = torch.cdist(x[first:first + 1], x)[0]
    min_dist[first] = -1.0  # chosen points stay at -1 (distances are >= 0), so they are never re-picked
    for _ in range(n_select - 1):
        nxt = int(min_dist.argmax())
        chosen.append(nxt)
        min_dist = torch.minimum(min_dist, torch.cdist(x[nxt:nxt + 1], x)[0])
        min_dist[nxt] = -1.0
    return chosen


def k_center_per_class(features: torch.Tensor, labels: np.ndarray, counts: dict[int, int]) -> list[int]:
    """k-center greedy run separately inside each class; returns dataset indices."""
    picked = []
    for c, n_c in counts.items():
        members = np.flatnonzero(labels == c)
        picked += [int(members[i]) for i in k_center_greedy(features[torch.as_tensor(members)], n_c)]
    return picked
