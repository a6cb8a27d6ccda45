"""`run_search(SearchConfig)`: PC-DARTS first-order bilevel search on a (sub)set, resumable, writing genotype.json.

The (sub)set is split with the seed into two halves: network weights are trained (SGD) on one,
alphas/betas (Adam) on the other, alternating one architecture step and one weight step per batch
after the warm-up epochs (during warm-up the architecture stays frozen).
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from kmix.data.registry import build_dataset
from kmix.data.subset import load_indices
from kmix.devices import resolve_device
from kmix.models import Normalized
from kmix.io import atomic_write, write_json_atomic, write_text_atomic
from kmix.models.darts_genotype import save_genotype
from kmix.models.darts_ops import PRIMITIVES
from kmix.options import data_option, data_root_option, device_option, option, quiet_option
from kmix.runs import (RunStopped, Stream, check_resume, refuse_unasked_resume, generator_for, load_state, lock_run_folder, rng_state, save_state, seed_everything,
                       set_rng_state)
from kmix.search.genotype import derive_genotype
from kmix.search.supernet import SearchNetwork, normalised_edge_weights

CHECKPOINT_NAME = "checkpoint.pt"
SEARCH_KIND = "kmix-search"
# the fields that define a search: a --resume must keep them (the others, e.g. device, may change)
RUN_DEFINING = ("data", "subset", "limit", "epochs", "warmup", "layers", "channels", "partial_k", "batch_size", "lr",
                "lr_min", "momentum", "weight_decay", "grad_clip", "arch_lr", "arch_weight_decay", "train_portion",
                "augment", "seed")


@dataclass
class SearchConfig:
    """PC-DARTS search settings; defaults are the PC-DARTS CIFAR-10 search setup (Xu et al. 2020, sec. 4.2)."""

    data: str = data_option()
    data_root: str | None = data_root_option()
    subset: str | list[int] | None = option(None, "subset index file (e.g. from `kmix subsample`) or list of train-set "
                                                  "indices")
    limit: int | None = option(None, "search on a seeded random LIMIT images of the (sub)set (quick runs)")
    out: str = option("runs/search", "output folder")
    epochs: int = option(50, "search epochs")
    warmup: int = option(15, "first epochs with alphas/betas frozen")
    layers: int = option(8, "cells in the supernet (6 normal + 2 reduction)")
    channels: int = option(16, "initial channels")
    partial_k: int = option(4, "1/K of the channels enter each mixed op")
    batch_size: int = option(256, "images per step")
    lr: float = option(0.1, "SGD learning rate, cosine to lr_min over the epochs")
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = option(6e-4, "Adam lr of alphas/betas (betas 0.5, 0.999)")
    arch_weight_decay: float = 1e-3
    train_portion: float = 0.5  # fraction of the (sub)set for the weights; the rest updates alphas/betas
    augment: bool = option(True, "random crop + flip on the search data where the dataset has it (CIFAR)")
    seed: int = option(0, "seed of the split, the shuffles and the init")
    device: str = device_option()
    workers: int = option(0, "data loader workers")
    resume: bool = option(False, "continue from OUT/checkpoint.pt (same settings)")
    quiet: bool = quiet_option()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field before any work starts."""
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        need(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an int >= 1")
        need(isinstance(self.warmup, int) and 0 <= self.warmup <= self.epochs, "warmup", f"an int in [0, epochs={self.epochs}]")
        need(isinstance(self.layers, int) and self.layers >= 1, "layers", "an int >= 1")
        need(isinstance(self.partial_k, int) and self.partial_k >= 1, "partial_k", "an int >= 1")
        need(isinstance(self.channels, int) and self.channels >= 2 and self.channels % self.partial_k == 0,
             "channels", f"an int >= 2 divisible by partial_k={self.partial_k}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an int >= 1")
        need(self.lr > 0 and math.isfinite(self.lr), "lr", "a positive finite number")
        need(0 <= self.lr_min <= self.lr, "lr_min", f"in [0, lr={self.lr}]")
        need(self.arch_lr > 0 and math.isfinite(self.arch_lr), "arch_lr", "a positive finite number")
        need(self.weight_decay >= 0 and self.arch_weight_decay >= 0, "weight_decay", "non-negative (also arch_weight_decay)")
        need(self.grad_clip > 0, "grad_clip", "positive")
        need(0.0 < self.train_portion < 1.0, "train_portion", "in (0, 1)")
        need(self.limit is None or (isinstance(self.limit, int) and self.limit >= 2), "limit", "None or an int >= 2")
        need(isinstance(self.workers, int) and self.workers >= 0, "workers", "an int >= 0")


def split_halves(n: int, portion: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded random split of range(n) into (weight-training positions, architecture positions)."""
    if n < 2:
        raise ValueError(f"the search needs at least 2 images to split into two halves, got {n}")
    perm = torch.randperm(n, generator=generator_for(Stream.SEARCH_SPLIT, seed)).tolist()
    n_train = min(max(1, int(round(n * portion))), n - 1)
    return sorted(perm[:n_train]), sorted(perm[n_train:])


def search_data(cfg: SearchConfig) -> tuple[Dataset, Dataset, Any, dict[str, Any]]:
    """(weight half, architecture half, DatasetInfo, facts) from the dataset, subset, limit and seed."""
    dataset, info = build_dataset(cfg.data, root=cfg.data_root, train=True, augment=cfg.augment)
    positions = list(range(len(dataset)))
    if cfg.subset is not None:
        from kmix.data.provenance import data_provenance

        fingerprint = data_provenance(cfg.data, info, len(dataset), cfg.data_root)["fingerprint"]
        positions = load_indices(cfg.subset, len(dataset), classes=info.class_names, fingerprint=fingerprint)
        if len(positions) == 0:
            raise ValueError(f"subset {cfg.subset!r} is empty")
    if cfg.limit is not None and cfg.limit < len(positions):
        pick = torch.randperm(len(positions), generator=generator_for(Stream.SEARCH_LIMIT, cfg.seed))[: cfg.limit]
        positions = [positions[i] for i in sorted(pick.tolist())]
    train_pos, val_pos = split_halves(len(positions), cfg.train_portion, cfg.seed)
    facts = {"dataset_size": len(dataset), "searched_images": len(positions),
             "train_images": len(train_pos), "arch_images": len(val_pos)}
    return (Subset(dataset, [positions[i] for i in train_pos]), Subset(dataset, [positions[i] for i in val_pos]),
            info, facts)


def _loader(ds: Dataset, cfg: SearchConfig, epoch: int, half: int) -> DataLoader:
    gen = generator_for(Stream.SEARCH_ORDER, cfg.seed, epoch, half)  # same order after resume
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen, num_workers=cfg.workers,
                      pin_memory=torch.cuda.is_available() and cfg.device != "cpu", drop_last=False)


def arch_summary(net: SearchNetwork) -> dict[str, Any]:
    """alphas (raw and softmax per edge), betas (raw and normalised per node) of both cell types, as lists."""
    out: dict[str, Any] = {"ops": list(PRIMITIVES)}
    for kind in ("normal", "reduce"):
        alphas = getattr(net, f"alphas_{kind}").detach().cpu()
        betas = getattr(net, f"betas_{kind}").detach().cpu()
        out[f"alphas_{kind}"] = alphas.tolist()
        out[f"alphas_{kind}_softmax"] = F.softmax(alphas, dim=-1).tolist()
        out[f"betas_{kind}"] = betas.tolist()
        out[f"betas_{kind}_normalised"] = normalised_edge_weights(betas, net.steps).tolist()
    return out


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> int:
    return int((logits.argmax(1) == y).sum())


def _run_epoch(model: Normalized, cfg: SearchConfig, train_ds, val_ds, epoch: int, w_opt, a_opt,
               device: torch.device) -> dict[str, Any]:
    net: SearchNetwork = model.net  # type: ignore[assignment]
    search_arch = epoch >= cfg.warmup
    model.train()
    stats = dict(train_loss=0.0, train_correct=0, train_seen=0, val_loss=0.0, val_correct=0, val_seen=0)
    val_iter = iter(_loader(val_ds, cfg, epoch, 1)) if search_arch else None
    train_loader = _loader(train_ds, cfg, epoch, 0)
    bar = tqdm(train_loader, desc=f"search {epoch + 1}/{cfg.epochs}" + (" (warm-up)" if not search_arch else ""),
               disable=cfg.quiet, leave=False)
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if val_iter is not None:
            try:
                xv, yv = next(val_iter)
            except StopIteration:
                val_iter = iter(_loader(val_ds, cfg, epoch, 1))
                xv, yv = next(val_iter)
            xv, yv = xv.to(device, non_blocking=True), yv.to(device, non_blocking=True)
            a_opt.zero_grad(set_to_none=True)
            logits_v = model(xv)
            loss_v = F.cross_entropy(logits_v, yv)
            loss_v.backward()  # first-order: gradient at the current weights
            a_opt.step()
            stats["val_loss"] += loss_v.item() * len(yv)
            stats["val_correct"] += _accuracy(logits_v.detach(), yv)
            stats["val_seen"] += len(yv)
        w_opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"search loss is {loss.item()} at epoch {epoch + 1}; lower --lr")
        loss.backward()
        nn.utils.clip_grad_norm_(net.weight_parameters(), cfg.grad_clip)
        w_opt.step()
        stats["train_loss"] += loss.item() * len(y)
        stats["train_correct"] += _accuracy(logits.detach(), y)
        stats["train_seen"] += len(y)
        bar.set_postfix(loss=f"{stats['train_loss'] / stats['train_seen']:.3f}")
    bar.close()
    record = {
        "epoch": epoch + 1,
        "lr": w_opt.param_groups[0]["lr"],
        "arch_updated": search_arch,
        "images_seen": stats["train_seen"] + stats["val_seen"],
        "train_images_seen": stats["train_seen"],
        "arch_images_seen": stats["val_seen"],
        "train_loss": stats["train_loss"] / max(1, stats["train_seen"]),
        "train_acc": stats["train_correct"] / max(1, stats["train_seen"]),
        "val_loss": stats["val_loss"] / stats["val_seen"] if stats["val_seen"] else None,
        "val_acc": stats["val_correct"] / stats["val_seen"] if stats["val_seen"] else None,
    }
    return record


def _config_dict(cfg: SearchConfig) -> dict[str, Any]:
    d = asdict(cfg)
    if isinstance(d["subset"], (list, tuple)):
        d["subset"] = [int(i) for i in d["subset"]]
    return d


def _write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    cols = ["epoch", "lr", "arch_updated", "wall_s", "images_seen", "train_images_seen", "arch_images_seen",
            "train_loss", "train_acc", "val_loss", "val_acc"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, buf.getvalue())


def _outputs(out: Path, cfg: SearchConfig, net: SearchNetwork, history, facts, wall_s: float, done: bool) -> dict:
    genotype = derive_genotype(net)
    save_genotype(out / "genotype.json", genotype)
    summary = {
        "finished": done,
        "wall_s": wall_s,
        "epochs": len(history),
        "epoch_wall_s": [h["wall_s"] for h in history],
        "images_seen_per_epoch": [h["images_seen"] for h in history],
        **facts,
        "genotype": genotype.to_dict(),
        "history": history,
        "arch": arch_summary(net),
        "config": _config_dict(cfg),
    }
    write_json_atomic(out / "search.json", summary)
    _write_history_csv(out / "history.csv", history)
    return summary


def run_search(cfg: SearchConfig, *, stop_after_epochs: int | None = None) -> dict[str, Any]:
    """Run (or resume) the search; returns the search.json summary. Outputs land in cfg.out.

    `stop_after_epochs=N` raises kmix.runs.RunStopped right after epoch N's checkpoint, before that
    epoch's outputs, as a run killed there would stop; `resume=True` continues it."""
    cfg.validate()
    with lock_run_folder(cfg.out, "kmix search"):
        return _search(cfg, stop_after_epochs)


def _search(cfg: SearchConfig, stop_after_epochs: int | None) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT_NAME
    refuse_unasked_resume(ckpt_path, "a search checkpoint", cfg.resume)
    saved = load_state(ckpt_path, SEARCH_KIND, label="search checkpoint") if cfg.resume else None
    if saved is not None:
        check_resume(saved["config"], _config_dict(cfg), RUN_DEFINING, source=ckpt_path, what="search",
                     hint="resume it with the settings it was started with, or choose another --out")
    device = resolve_device(cfg.device)
    train_ds, val_ds, info, facts = search_data(cfg)

    seed_everything(cfg.seed)
    net = SearchNetwork(info.num_classes, in_chans=info.in_chans, channels=cfg.channels, layers=cfg.layers,
                        partial_k=cfg.partial_k)
    model = Normalized(net, info.mean, info.std).to(device)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.arch_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    history: list[dict[str, Any]] = []
    wall_s = 0.0
    start_epoch = 0
    if saved is not None:
        net.load_state_dict(saved["model"])
        w_opt.load_state_dict(saved["w_opt"])
        a_opt.load_state_dict(saved["a_opt"])
        sched.load_state_dict(saved["sched"])
        set_rng_state(saved["rng"])
        history, wall_s, start_epoch = saved["history"], saved["wall_s"], saved["epoch"]
    out.mkdir(parents=True, exist_ok=True)
    summary = None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        record = _run_epoch(model, cfg, train_ds, val_ds, epoch, w_opt, a_opt, device)
        sched.step()
        record["wall_s"] = time.perf_counter() - t0
        wall_s += record["wall_s"]
        record["genotype"] = derive_genotype(net).to_dict()
        history.append(record)
        save_state(ckpt_path, SEARCH_KIND, {
            "config": _config_dict(cfg), "epoch": epoch + 1, "model": net.state_dict(),
            "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(), "sched": sched.state_dict(),
            "rng": rng_state(), "history": history, "wall_s": wall_s, "info": info.to_dict(),
        })
        if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs:
            raise RunStopped(f"search stopped after epoch {epoch + 1} (stop_after_epochs={stop_after_epochs})")
        summary = _outputs(out, cfg, net, history, facts, wall_s, done=epoch + 1 == cfg.epochs)
        if not cfg.quiet:
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: {record['wall_s']:.1f}s, train loss "
                       f"{record['train_loss']:.3f} acc {record['train_acc']:.3f}"
                       + (f", arch-half acc {record['val_acc']:.3f}" if record["val_acc"] is not None else " (warm-up)"))
    if summary is None:  # resumed a finished run: rewrite the outputs
        summary = _outputs(out, cfg, net, history, facts, wall_s, done=True)
    _plot_alphas(out / "alphas.png", net)
    return summary


def _plot_alphas(path: Path, net: SearchNetwork) -> None:
    """Heatmaps of softmax(alpha) - 1/n_ops per edge and op (normal and reduction cell); labels carry the edge weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), constrained_layout=True)
    for ax, reduction in zip(axes, (False, True)):
        op_w, edge_w = (t.detach().cpu() for t in net.cell_weights(reduction))
        dev = (op_w - 1.0 / op_w.shape[1]).numpy()
        lim = max(abs(dev).max(), 1e-6)
        im = ax.imshow(dev, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        pairs = [(i, j) for i in range(net.steps) for j in range(i + 2)]
        labels = [f"node {i} <- {j} (edge w {edge_w[e]:.2f})" for e, (i, j) in enumerate(pairs)]
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xticks(range(len(PRIMITIVES)), PRIMITIVES, rotation=45, ha="right", fontsize=7)
        ax.set_title(("reduction" if reduction else "normal") + " cell: softmax(alpha) - 1/8")
        fig.colorbar(im, ax=ax)
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)
