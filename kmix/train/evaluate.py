"""Evaluation: top-1/top-5 error (percent) and mean cross-entropy, sharded over ranks; host syncs once."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from kmix.train.build import autocast
from kmix.train.distributed import DistInfo, all_reduce_sum


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, *, device: torch.device, batch_size: int = 256,
             workers: int = 0, amp: str = "none", channels_last: bool = False,
             dist_info: DistInfo = DistInfo()) -> dict[str, float]:
    """Return {'top1_err', 'top5_err', 'loss', 'n'} of `model` on `dataset` (each rank does every world-th item)."""
    shard = dataset if not dist_info.enabled else Subset(dataset, range(dist_info.rank, len(dataset), dist_info.world))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    return evaluate_batches(model, loader, device=device, amp=amp, channels_last=channels_last, dist_info=dist_info)


@torch.no_grad()
def evaluate_batches(model: nn.Module, batches: Iterable, *, device: torch.device, amp: str = "none",
                     channels_last: bool = False, dist_info: DistInfo = DistInfo()) -> dict[str, float]:
    """As `evaluate`, over this rank's (images, labels) batches, e.g. from a DeviceLoader."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss, count
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        y = torch.as_tensor(y).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(amp, device):
            out = model(x)
        logits = (out[0] if isinstance(out, (tuple, list)) else out).float()
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(y[:, None])
        sums += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), F.cross_entropy(logits, y, reduction="sum"),
                             torch.full((), y.numel(), device=device)]).double()
    correct1, correct5, loss_sum, total = all_reduce_sum(sums.tolist(), dist_info, device)
    model.train(was_training)
    if total == 0:
        raise ValueError("the evaluation set is empty: nothing to evaluate")
    return {"top1_err": 100.0 * (1 - correct1 / total), "top5_err": 100.0 * (1 - correct5 / total),
            "loss": loss_sum / total, "n": int(total)}


def evaluate_data(model: nn.Module, data, config, device: torch.device, dist_info: DistInfo) -> dict[str, float]:
    """A training run's evaluation of `model` on data.eval_set (kmix.train.data_setup.TrainData): by the device
    pipeline when it holds the set, else by a DataLoader; batches of max(256, batch_size)."""
    common = dict(device=device, amp=config.amp, channels_last=config.channels_last, dist_info=dist_info)
    batch = max(256, config.batch_size)
    if data.eval_loader is not None:
        return evaluate_batches(model, data.eval_loader.in_order(batch), **common)
    return evaluate(model, data.eval_set, batch_size=batch, workers=config.workers, **common)
