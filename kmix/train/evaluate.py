"""Test-set evaluation: top-1/top-5 error (percent) and mean cross-entropy, sharded over ranks."""
from __future__ import annotations

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
    was_training = model.training
    model.eval()
    shard = dataset if not dist_info.enabled else Subset(dataset, range(dist_info.rank, len(dataset), dist_info.world))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    correct1 = correct5 = loss_sum = 0.0
    count = 0
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = torch.as_tensor(y).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(amp, device):
            out = model(x)
        logits = (out[0] if isinstance(out, (tuple, list)) else out).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top.eq(y[:, None])
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(dim=1).sum().item()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        count += y.numel()
    correct1, correct5, loss_sum, total = all_reduce_sum([correct1, correct5, loss_sum, float(count)], dist_info, device)
    model.train(was_training)
    if total == 0:
        raise ValueError("the test set is empty: nothing to evaluate")
    return {"top1_err": 100.0 * (1 - correct1 / total), "top5_err": 100.0 * (1 - correct5 / total),
            "loss": loss_sum / total, "n": int(total)}
