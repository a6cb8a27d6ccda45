"""`fit(config)`: the training loop — data on the device, mix, SGD, evaluate, checkpoint, resume exactly.

Exact resume rests on three facts: the data order and augmentation are pure functions of
(seed, epoch[, item or step]) (see `kmix.data.order`), the mixer's generator is reseeded from
(seed, rank, step) before every step, and every other RNG (python, numpy, torch) is saved in the
checkpoint per rank and restored. A run resumed from a mid-epoch checkpoint therefore replays the
remaining steps bit for bit. The host waits for the device only every SYNC_EVERY steps, before a
checkpoint and at the end of an epoch; a non-finite loss is found there, named by its step, before
anything is written. With `record_dynamics` the run also records per-sample loss, margin and
correctness every epoch (`kmix.train.dynamics`), kept in `last.pt` and written to `dynamics.pt`.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from kmix.data.order import check_keep_last
from kmix.data.provenance import data_provenance
from kmix.data.transforms import cutout
from kmix.devices import resolve_device
from kmix.io import write_json_atomic, write_text_atomic
from kmix.mix import SoftTargetCrossEntropy, soft_targets
from kmix.runs import (RunFolderBusy, RunStopped, Stream, check_resume, generator_for, lock_run_folder, rng_state, seed_everything,
                       seed_for, set_rng_state)
from kmix.train import distributed as D
from kmix.train.build import (autocast, build_mixer, build_network, build_optimizer, build_scheduler,
                              check_amp, compute_loss, norm_stats, resolve_model_kwargs)
from kmix.train.checkpoint import load_checkpoint, model_meta, save_checkpoint
from kmix.train.config import RUN_DEFINING, TrainConfig, default_values, save_config, upgrade_run_config
from kmix.train.data_setup import build_train_data, resolve_prepare_steps
from kmix.train.dynamics import DynamicsRecorder
from kmix.train.evaluate import evaluate, evaluate_batches
from kmix.train.plots import plot_curves
from kmix.train.sampling import EpochBatchSampler, SeededItems, batches_per_epoch

SYNC_EVERY = 25  # steps between host syncs (loss read-back, NaN check, progress line)


@dataclass
class Progress:
    """Where a run stands besides its weights and RNGs: the counters a checkpoint holds and the log reads."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # batches of the current epoch already trained on
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    best_top1_err: float = math.inf
    best_epoch: int = 0
    loss_sum: float = 0.0  # this epoch's synced steps: summed loss x batch, images, seconds of data + steps
    images: int = 0
    train_s: float = 0.0
    wall_before: float = 0.0  # wall seconds of the earlier sessions of this run

    def finish_epoch(self, record: dict[str, Any]) -> None:
        """Append the epoch's record and start the next epoch's counters."""
        self.history.append(record)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.loss_sum, self.images, self.train_s = 0.0, 0, 0.0

    def state(self, wall_s: float) -> dict[str, Any]:
        """The checkpoint's keys for it (the format of every kmix checkpoint so far)."""
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "history": list(self.history), "best_top1_err": self.best_top1_err, "best_epoch": self.best_epoch,
                "epoch_accum": {"loss_sum": self.loss_sum, "images": self.images, "train_s": self.train_s},
                "wall_s": wall_s}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        accum = state["epoch_accum"]
        return cls(epoch=state["epoch"], step_in_epoch=state["step_in_epoch"], global_step=state["global_step"],
                   history=list(state["history"]), best_top1_err=state["best_top1_err"],
                   best_epoch=state["best_epoch"], loss_sum=accum["loss_sum"], images=accum["images"],
                   train_s=accum["train_s"], wall_before=state["wall_s"])


class TrainingStopped(RunStopped):
    """Raised by `fit(..., stop_after_steps=N)` right after step N's checkpoint: an interruption on purpose."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit`; `out` is the run folder, which `kmix train --resume --out OUT` continues."""

    def __init__(self, out: str):
        super().__init__(out)
        self.out = out


def fit(config: TrainConfig, *, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train as `config` says; write config.yaml, metrics.jsonl, summary.json, last.pt, best.pt,
    curves.png and TensorBoard events into config.out; return the summary dict (top1_err, top5_err,
    best_top1_err, eval_split, eval_images, epochs, wall_s, img_per_s, ...).

    `stop_after_steps=N` checkpoints after global step N and raises TrainingStopped, as an interrupted
    run would stop (for resume tests and time-boxed jobs); `--resume` continues it."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit expects a TrainConfig, got {type(config).__name__}")
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    dist_info = D.DistInfo(local_rank=_local_rank())
    device = resolve_device(config.device, dist_info.local_rank)
    dist_info = D.setup(device)
    try:
        config = config.replace(out=config.out or D.broadcast_object(default_out(config), dist_info))
        with _run_folder_lock(config.out, dist_info):
            return _Run(config, device, dist_info, stop_after_steps).train()
    except KeyboardInterrupt as err:
        if config.out is None or isinstance(err, TrainingInterrupted):
            raise
        raise TrainingInterrupted(config.out) from err
    finally:
        D.teardown(dist_info)


@contextmanager
def _run_folder_lock(out: str, dist_info: D.DistInfo) -> Iterator[None]:
    """Rank 0 holds the run folder's lock (kmix.runs.lock_run_folder); every rank fails alike when it is busy."""
    with ExitStack() as stack:
        busy = None
        if dist_info.is_main:
            try:
                stack.enter_context(lock_run_folder(out, "kmix train"))
            except RunFolderBusy as err:
                busy = str(err)
        busy = D.broadcast_object(busy, dist_info)
        if busy:
            raise RunFolderBusy(busy)
        yield


def default_out(config: TrainConfig) -> str:
    """runs/<data>-<model>-<mix>-<UTC timestamp>."""
    data = Path(config.data).name or "data"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{data}-{config.model.replace(':', '_')}-{config.mix}-{stamp}")


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def train_step(model, x: torch.Tensor, target: torch.Tensor, *, criterion, optimizer, scaler, scheduler,
               amp: str, aux_weight: float = 0.0, grad_clip: float = 0.0, keep_logits: bool = False):
    """One optimisation step: forward, loss, backward, clip, step. Returns the detached loss (no host sync),
    or (loss, detached logits of the forward pass) with `keep_logits` (for per-sample records)."""
    with autocast(amp, x.device):
        output = model(x)
    loss = compute_loss(output, target, criterion, aux_weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    if keep_logits:
        logits = output[0] if isinstance(output, (tuple, list)) else output
        return loss.detach(), logits.detach()
    return loss.detach()


class _Run:
    """One training run's state; `train()` runs it to the end (or resumes it)."""

    def __init__(self, config: TrainConfig, device: torch.device, dist_info: D.DistInfo,
                 stop_after_steps: int | None = None):
        self.dist = dist_info
        self.stop_after_steps = stop_after_steps
        self.device = device
        check_amp(config.amp, device)
        self.config = config
        self.out = Path(config.out)
        self.last_path, self.best_path = self.out / "last.pt", self.out / "best.pt"
        resume_state = self._resume_state()

        # everything that can fail on bad input fails here, before any training
        check_keep_last(config.keep_last_batch, dist_info.world)
        if config.check_images:
            self._check_images()
        self.data = build_train_data(config, device, rank=dist_info.rank, world=dist_info.world,
                                     quiet=config.quiet or not dist_info.is_main,
                                     loader=None if resume_state is None else resume_state.get("loader"))
        self.info, self.train_set = self.data.info, self.data.train_set
        self.prepare_steps = self._prepare_steps(resume_state)
        indices = self.data.train_indices  # position in train_set -> index in the full training set
        self.full_index = None if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        self.dynamics = (DynamicsRecorder(config.epochs, self._full_train_size(), device)
                         if config.record_dynamics else None)
        self.prefix = "train_" if self.data.eval_split == "train" else ""  # summary keys say what was evaluated
        n_train = len(self.train_set)
        self.steps_per_epoch = batches_per_epoch(n_train, config.batch_size, config.limit_train_batches,
                                                 config.keep_last_batch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({n_train} images)")
        if config.batch_size % dist_info.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                             f"{dist_info.world} (it is the global batch)")
        self.model_kwargs = resolve_model_kwargs(config)
        seed_everything(config.seed)  # identical initial weights on every rank
        self.model = build_network(config, self.info, self.model_kwargs).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mix_generator = torch.Generator()
        self.mixer = build_mixer(config, self.info.num_classes, self.mix_generator)
        pool = config.batch_size // dist_info.world * self.prepare_steps  # the images one mixing call draws from
        if self.mixer is not None and self.mixer.k > pool and dist_info.is_main:
            # partners come from the pool: with K > pool size a sample holds the same images several times
            print(f"kmix train: warning: k={self.mixer.k} images per sample from a pool of {pool} (batch per process "
                  f"x prepare_steps): partners repeat within a sample; use k <= {pool} or a larger batch",
                  file=sys.stderr)
        self.criterion = SoftTargetCrossEntropy()
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(config, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16")
        self.meta = model_meta(config.model, self.info, **self.model_kwargs)
        # the normalisation trained with (norm_mean/norm_std or the dataset's), so checkpoints rebuild it
        self.meta["mean"], self.meta["std"] = (list(v) for v in norm_stats(config, self.info))
        self.meta["provenance"] = data_provenance(config.data, self.info, self._full_train_size(), config.data_root)

        self.progress = Progress()
        self.pending: list[torch.Tensor] = []  # losses of the steps since the last host sync
        if resume_state is not None:
            self._load(resume_state)
        else:
            seed_everything(seed_for(Stream.RANK, config.seed, dist_info.rank))  # per-rank dropout etc.
        self.ddp = (DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
                    if dist_info.enabled else self.model)
        # the module the training step calls: compiled on its first step (evaluation and checkpoints use self.model)
        self.step_model = torch.compile(self.ddp) if config.compile else self.ddp
        self.writer = None

    def _check_images(self) -> None:
        """Decode every image of an ImageFolder dataset once; raise naming the unreadable files."""
        from kmix.data.imagefolder import find_unreadable_images
        from kmix.data.registry import build_dataset

        cfg = self.config
        splits = ("train",) if cfg.val_fraction > 0 or cfg.eval_on_train else ("train", "test")
        for split in splits:
            dataset, _ = build_dataset(cfg.data, train=split == "train", image_size=cfg.image_size)
            if not hasattr(dataset, "samples"):
                raise ValueError(f"check_images applies to ImageFolder data, not {cfg.data!r}")
            bad = find_unreadable_images(dataset, quiet=cfg.quiet or not self.dist.is_main)
            if bad:
                raise ValueError(f"{len(bad)} unreadable image(s) in the {split} split of {cfg.data}: "
                                 + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))

    # --- resume -------------------------------------------------------------------------------
    def _resume_state(self) -> dict[str, Any] | None:
        cfg = self.config
        if not cfg.resume:
            if self.last_path.exists():
                raise ValueError(f"out {self.out} already holds a run (last.pt); pass --resume to continue it "
                                 f"or choose another --out")
            return None
        if not self.last_path.exists():
            self._say(f"no {self.last_path} yet: starting a new run")
            return None
        state = load_checkpoint(self.last_path)
        check_resume(upgrade_run_config(state.get("config", {})), cfg.to_dict(), RUN_DEFINING, source=self.last_path,
                     defaults=default_values(),
                     hint="resume it with the settings it was started with, or choose another --out")
        done, partial = state.get("epoch", 0), state.get("step_in_epoch", 0)
        if done > cfg.epochs or (done == cfg.epochs and partial):
            raise ValueError(f"cannot resume {self.last_path} with epochs={cfg.epochs}: the run has already trained "
                             f"{done} epoch(s){f' and {partial} step(s)' if partial else ''}; pass --epochs "
                             f"{done + (1 if partial else 0)} or more, or choose another --out")
        recorded = "dynamics" in state
        if recorded != cfg.record_dynamics:
            raise ValueError(
                f"cannot resume {self.last_path} with record_dynamics={cfg.record_dynamics}: the run was started "
                + ("with --record-dynamics; resume it with --record-dynamics so that its records continue" if recorded
                   else "without --record-dynamics, and the steps already trained cannot be recorded afterwards; "
                        "start a new run to record dynamics"))
        return state

    def _prepare_steps(self, resume_state: dict[str, Any] | None) -> int:
        """Steps prepared per call: a resumed run keeps its own (runs from before the setting prepared 1)."""
        if resume_state is None:
            return resolve_prepare_steps(self.config, self.data, self.device)
        saved = resume_state.get("prepare_steps", 1)
        if self.config.prepare_steps is not None:
            check_resume({"prepare_steps": saved}, {"prepare_steps": self.config.prepare_steps}, ("prepare_steps",),
                         source=self.last_path, hint="resume it without --prepare-steps, or choose another --out")
        return saved

    def _load(self, state: dict[str, Any]) -> None:
        self.model.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # the schedule follows the config now (e.g. more epochs), not the one pickled in the checkpoint
        fresh = build_scheduler(self.config, torch.optim.SGD([torch.zeros(1)], lr=1.0), self.steps_per_epoch)
        self.scheduler.lr_lambdas = fresh.lr_lambdas
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress.from_state(state)
        if self.dynamics is not None:
            self.dynamics.load_state_dict(state["dynamics"])
        rngs = state["rng"]
        if len(rngs) != self.dist.world:
            raise ValueError(f"checkpoint {self.last_path} was written by {len(rngs)} process(es); "
                             f"resume it with the same number (now {self.dist.world})")
        set_rng_state(rngs[self.dist.rank])
        self._say(f"resumed {self.last_path} at epoch {self.progress.epoch + 1}, step {self.progress.step_in_epoch}"
                  f"/{self.steps_per_epoch}")

    def _checkpoint_state(self) -> dict[str, Any]:
        rngs = D.gather_objects(rng_state(), self.dist)  # collective: every rank calls it
        return {
            "model": self.model.net.state_dict(), "model_meta": self.meta, "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), **self.progress.state(self._wall_s()), "rng": rngs,
            "mix_generator": self.mix_generator.get_state(), "loader": self.data.loader, "data": self.data.record(),
            "prepare_steps": self.prepare_steps,
            **({"dynamics": self.dynamics.state_dict()} if self.dynamics is not None else {}),
            "data_order": {"seed": self.config.seed, "epoch": self.progress.epoch, "start_batch": self.progress.step_in_epoch,
                           "rule": "kmix.data.order.epoch_permutation(n, seed, epoch)"},
        }

    def _wall_s(self) -> float:
        """Wall seconds of the run so far, earlier sessions included."""
        return self.progress.wall_before + (time.perf_counter() - self.t_start)

    def _save_last(self) -> None:
        bad = [n for n, p in self.model.net.named_parameters() if not torch.isfinite(p).all()]
        if bad:  # every rank holds the same weights, so every rank stops here
            raise FloatingPointError(f"parameters {bad[:3]} became non-finite at epoch {self.progress.epoch + 1}, "
                                     f"step {self.progress.step_in_epoch}; kept the last good checkpoint {self.last_path}")
        state = self._checkpoint_state()
        if self.dist.is_main:
            save_checkpoint(self.last_path, state)
        D.barrier(self.dist)

    # --- the loop -----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg = self.config
        self.t_start = time.perf_counter()
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
            self._write_metrics()
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.out), purge_step=self.progress.epoch + 1)
            per_call = f", {self.prepare_steps} steps prepared per call" if self.prepare_steps > 1 else ""
            self._say(f"training on {len(self.train_set)} images ({self.data.loader} pipeline{per_call}), evaluating on "
                      f"{self.data.eval_images} {self.data.eval_split} images")
        try:
            while self.progress.epoch < cfg.epochs:
                self._train_epoch()
                self._end_epoch()
        finally:
            if self.writer is not None:
                self.writer.close()
        summary = self._summary()
        if self.dynamics is not None and self.dist.is_main:
            self._save_dynamics()
        if self.dist.is_main:
            write_json_atomic(self.out / "summary.json", summary)
            if cfg.plot and self.progress.history:
                plot_curves(self.progress.history, self.out / "curves.png",
                            title=f"{Path(cfg.data).name} {cfg.model} {cfg.mix} (K={cfg.k}, alpha={cfg.alpha:g})")
        return summary

    def _batches(self, start_batch: int, first_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(images, labels) on the device for this epoch from `start_batch` on, `prepare_steps` batches per
        item (the device pipeline; the workers pipeline yields one), with their indices into the full
        training set (on the device for the device pipeline, else on the CPU). Item c's augmentation is
        seeded by the global step of its first batch, `first_step + c * prepare_steps`."""
        cfg, device, per = self.config, self.device, self.prepare_steps
        if self.data.train_loader is not None:
            gens = (generator_for(Stream.DEVICE_AUGMENT, cfg.seed, self.dist.rank, step)
                    for step in itertools.count(first_step, per))
            yield from self.data.train_loader.epoch(self.progress.epoch, start_batch, gens, with_indices=True,
                                                    steps_per_call=per)
            return
        sampler = EpochBatchSampler(len(self.train_set), cfg.batch_size, seed=cfg.seed, epoch=self.progress.epoch,
                                    rank=self.dist.rank, world=self.dist.world, start_batch=start_batch,
                                    limit_batches=cfg.limit_train_batches, keep_last=cfg.keep_last_batch)
        # the loader's own generator keeps worker seeding from touching the global torch RNG
        gen = generator_for(Stream.LOADER, cfg.seed, self.progress.epoch, start_batch)
        loader = DataLoader(SeededItems(self.train_set, cfg.seed), batch_sampler=sampler, num_workers=cfg.workers,
                            pin_memory=device.type == "cuda", generator=gen)
        # the sampler is a pure function of (seed, epoch, rank): iterated again beside the loader it names
        # the items of each batch (the loader keeps the sampler's batch order, also with workers)
        for keys, (x, y) in zip(sampler, loader, strict=True):
            index = torch.tensor([i for _, i in keys], dtype=torch.int64)
            if self.full_index is not None:
                index = self.full_index[index]
            x = x.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.as_tensor(y).to(device, non_blocking=True), index

    def _steps(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per remaining step of this epoch: (mixed images, targets, unmixed images, labels, indices).

        Batches are prepared (augmented, cut out, mixed) `prepare_steps` at a time, the calls aligned to
        multiples of it within the epoch and seeded by their first step, so a run resumed inside a call
        prepares the same call again and skips the steps it already trained on."""
        per, done = self.prepare_steps, self.progress.step_in_epoch
        start = done - done % per
        first_step = self.progress.global_step - done % per
        local = self.config.batch_size // self.dist.world
        for c, (x, y, index) in enumerate(self._batches(start, first_step)):
            step = first_step + c * per
            mixed, target = self._mix(x, y, step)
            for i in range(-(-len(y) // local)):  # the last one short: the epoch's partial batch (keep_last_batch)
                if step + i >= self.progress.global_step:
                    part = slice(i * local, min((i + 1) * local, len(y)))
                    yield mixed[part], target[part], x[part], y[part], index[part]

    @torch.no_grad()
    def _mix(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cutout, then the mixer (or plain soft targets), with generators seeded by the global `step`."""
        cfg = self.config
        if cfg.cutout:
            x = cutout(x, cfg.cutout, generator_for(Stream.CUTOUT, cfg.seed, self.dist.rank, step))
        if self.mixer is None:
            return x, soft_targets(y, self.info.num_classes, cfg.label_smoothing)
        self.mix_generator.manual_seed(seed_for(Stream.MIX, cfg.seed, self.dist.rank, step))
        return self.mixer(x, y, check_labels=False)  # labels were validated with the dataset: no host sync

    def _train_epoch(self) -> None:
        cfg = self.config
        net = self.model.net
        if hasattr(net, "drop_path_prob"):
            net.drop_path_prob = cfg.drop_path * self.progress.epoch / cfg.epochs
        self.ddp.train()
        self.bar = tqdm(total=self.steps_per_epoch, initial=self.progress.step_in_epoch,
                        desc=f"epoch {self.progress.epoch + 1}/{cfg.epochs}", disable=cfg.quiet or not self.dist.is_main,
                        leave=False, dynamic_ncols=True)
        self.t_mark = self.t_epoch = time.perf_counter()
        self.images_at_epoch_start = self.progress.images
        rec = self.dynamics
        if rec is not None:
            rec.begin_epoch(self.progress.epoch)
        # records come from the training pass itself when it sees the plain batch, else from an extra pass
        from_training_pass = rec is not None and self.mixer is None
        for x, target, clean, y, index in self._steps():
            if rec is not None and not from_training_pass:
                rec.record(index, self._clean_logits(clean), y)  # before the step: the weights the step sees
            out = train_step(self.step_model, x, target, criterion=self.criterion, optimizer=self.optimizer,
                             scaler=self.scaler, scheduler=self.scheduler, amp=cfg.amp,
                             aux_weight=cfg.auxiliary_weight, grad_clip=cfg.grad_clip, keep_logits=from_training_pass)
            loss = out[0] if from_training_pass else out
            if from_training_pass:
                rec.record(index, out[1], y)
            self.pending.append(loss)
            self.progress.global_step += 1
            self.progress.step_in_epoch += 1
            self.bar.update(1)
            at_checkpoint = (cfg.ckpt_every_steps and self.progress.global_step % cfg.ckpt_every_steps == 0
                             and self.progress.step_in_epoch < self.steps_per_epoch)
            stop = self.stop_after_steps is not None and self.progress.global_step >= self.stop_after_steps
            if at_checkpoint or stop or len(self.pending) >= SYNC_EVERY:
                self._sync()
            if at_checkpoint or stop:
                if rec is not None:
                    rec.flush(self.dist)
                self._save_last()
                self.t_mark = time.perf_counter()  # checkpoint writing is not training time
            if stop:
                raise TrainingStopped(f"stopped after step {self.progress.global_step} as asked; {self.last_path} holds it")
        self._sync()
        if rec is not None:
            rec.flush(self.dist)  # before the epoch-end checkpoint, which holds the finished row
        self.bar.close()

    @torch.no_grad()
    def _clean_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the unmixed batch for the dynamics records of a mixing run: a no-grad forward pass
        in eval mode (BatchNorm's running statistics, no dropout), which changes no state and draws no
        random numbers, so the training run is the same with or without records."""
        self.model.eval()
        try:
            with autocast(self.config.amp, x.device):
                output = self.model(x)
        finally:
            self.model.train()
        return output[0] if isinstance(output, (tuple, list)) else output

    def _full_train_size(self) -> int:
        """Images in the full training set (a subset's or hold-out's indices point into it)."""
        ts = self.train_set
        return len(ts.dataset) if self.full_index is not None else len(ts)  # type: ignore[attr-defined, arg-type]

    def _save_dynamics(self) -> None:
        """OUT/dynamics.pt: the records of the epochs trained, the full set's labels and how they were made."""
        base = self.train_set.dataset if self.full_index is not None else self.train_set  # type: ignore[attr-defined]
        labels = torch.as_tensor(list(base.targets), dtype=torch.int64)  # type: ignore[attr-defined]
        source = ("training forward pass (train mode, before the update)" if self.mixer is None else
                  "extra forward pass in eval mode on the unmixed augmented batch, before the update")
        self.dynamics.save(self.out / "dynamics.pt", self.progress.epoch, labels, {
            "source": source, "mix": self.config.mix, "data": self.config.data, "model": self.config.model,
            "seed": self.config.seed, "train_indices": None if self.full_index is None else self.full_index.tolist(),
            "steps": self.progress.global_step})

    def _sync(self) -> None:
        """Wait for the device: read back the pending losses (mean over ranks), stop on a non-finite one
        naming its step, and account images, loss and training time."""
        if not self.pending:
            return
        losses = torch.stack(self.pending).float()
        if self.dist.enabled:
            torch.distributed.all_reduce(losses)
            losses /= self.dist.world
        values = losses.tolist()
        first_step = self.progress.step_in_epoch - len(values)  # steps of the window: first_step + 1 ... step_in_epoch
        self.pending = []
        for j, value in enumerate(values):
            if not math.isfinite(value):
                kept = f"kept the last good checkpoint {self.last_path}" if self.last_path.exists() else \
                    "no checkpoint had been written yet"
                step = first_step + j + 1
                raise FloatingPointError(
                    f"loss is {value} at epoch {self.progress.epoch + 1}, step {step}/{self.steps_per_epoch} (global step "
                    f"{self.progress.global_step - len(values) + j + 1}); stopped, {kept}. Try a lower --lr.")
            images = self._step_images(first_step + j)
            self.progress.loss_sum += value * images
            self.progress.images += images
        now = time.perf_counter()
        self.progress.train_s += now - self.t_mark  # data + steps since the last sync (not checkpoint writing)
        self.t_mark = now
        if not self.bar.disable:
            rate = (self.progress.images - self.images_at_epoch_start) / max(now - self.t_epoch, 1e-9)
            self.bar.set_postfix(loss=f"{self.progress.loss_sum / self.progress.images:.3f}", img_s=f"{rate:.0f}")

    def _step_images(self, step_in_epoch: int) -> int:
        """Images of the global batch of step `step_in_epoch` (0-based): batch_size, fewer for a kept last partial
        batch (keep_last_batch)."""
        return min(self.config.batch_size, len(self.train_set) - step_in_epoch * self.config.batch_size)

    def _evaluate(self) -> dict[str, float]:
        cfg = self.config
        common = dict(device=self.device, amp=cfg.amp, channels_last=cfg.channels_last, dist_info=self.dist)
        batch = max(256, cfg.batch_size)
        if self.data.eval_loader is not None:
            return evaluate_batches(self.model, self.data.eval_loader.in_order(batch), **common)
        return evaluate(self.model, self.data.eval_set, batch_size=batch, workers=cfg.workers, **common)

    def _end_epoch(self) -> None:
        cfg = self.config
        images = max(self.progress.images, 1)
        record: dict[str, Any] = {
            "epoch": self.progress.epoch + 1, "train_loss": self.progress.loss_sum / images,
            "lr": self.optimizer.param_groups[0]["lr"], "img_per_s": self.progress.images / max(self.progress.train_s, 1e-9),
            "steps": self.progress.global_step, "images": self.progress.images, "train_s": self.progress.train_s,
        }
        evaluated = (self.progress.epoch + 1) % cfg.eval_every == 0 or self.progress.epoch + 1 == cfg.epochs
        improved = False
        if evaluated:
            result = self._evaluate()
            p = self.prefix
            record.update({"eval_split": self.data.eval_split, f"{p}eval_loss": result["loss"],
                           f"{p}top1_err": result["top1_err"], f"{p}top5_err": result["top5_err"]})
            improved = result["top1_err"] < self.progress.best_top1_err
        record["wall_s"] = self._wall_s()
        self.progress.finish_epoch(record)
        if improved:
            self.progress.best_top1_err, self.progress.best_epoch = record[f"{self.prefix}top1_err"], record["epoch"]
            if self.dist.is_main:
                save_checkpoint(self.best_path, {"model": self.model.net.state_dict(), "model_meta": self.meta,
                                                 "config": cfg.to_dict(), "epoch": record["epoch"],
                                                 "eval_split": self.data.eval_split,
                                                 f"{self.prefix}top1_err": record[f"{self.prefix}top1_err"],
                                                 f"{self.prefix}top5_err": record[f"{self.prefix}top5_err"]})
        self._save_last()  # after best.pt: a kill in between redoes this epoch end identically
        if self.dist.is_main:
            self._write_metrics()
            self._log_epoch(record, improved)

    def _log_epoch(self, record: dict[str, Any], improved: bool) -> None:
        p, split = self.prefix, self.data.eval_split
        if self.writer is not None:
            self.writer.add_scalar("train/train_loss", record["train_loss"], record["epoch"])
            self.writer.add_scalar("lr", record["lr"], record["epoch"])
            self.writer.add_scalar("img_per_s", record["img_per_s"], record["epoch"])
            if f"{p}top1_err" in record:
                for key in ("eval_loss", "top1_err", "top5_err"):
                    self.writer.add_scalar(f"{split}/{key}", record[f"{p}{key}"], record["epoch"])
            self.writer.flush()
        if not self.config.quiet:
            errs = (f"  {split} top1 err {record[f'{p}top1_err']:.2f}%  top5 err {record[f'{p}top5_err']:.2f}%"
                    if f"{p}top1_err" in record else "  (not evaluated)")
            tqdm.write(f"epoch {record['epoch']}/{self.config.epochs}  loss {record['train_loss']:.4f}{errs}  "
                       f"lr {record['lr']:.4g}  {record['img_per_s']:.0f} img/s" + ("  *best" if improved else ""))

    def _write_metrics(self) -> None:
        """metrics.jsonl rewritten from the checkpointed history (so a resume never duplicates lines)."""
        write_text_atomic(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.progress.history))

    def _summary(self) -> dict[str, Any]:
        p = self.prefix
        last = self.progress.history[-1] if self.progress.history else {}
        train_images = sum(r["images"] for r in self.progress.history)
        train_s = sum(r["train_s"] for r in self.progress.history)
        return {
            f"{p}top1_err": last.get(f"{p}top1_err"), f"{p}top5_err": last.get(f"{p}top5_err"),
            f"best_{p}top1_err": None if math.isinf(self.progress.best_top1_err) else self.progress.best_top1_err, "best_epoch": self.progress.best_epoch,
            **self.data.record(), "epochs": self.progress.epoch, "steps": self.progress.global_step,
            "train_loss": last.get("train_loss"), "wall_s": self._wall_s(),
            "img_per_s": train_images / train_s if train_s else None,
            "params": sum(p.numel() for p in self.model.parameters()), "device": str(self.device),
            "world_size": self.dist.world, "data": self.config.data, "model": self.config.model,
            "mix": self.config.mix, "k": self.config.k, "alpha": self.config.alpha, "out": str(self.out),
            # what the data was, not its path: `kmix table` pools only runs on the same source
            "data_fingerprint": self.meta["provenance"]["fingerprint"],
            "checkpoints": {"last": str(self.last_path), "best": str(self.best_path)},
        }

    def _say(self, msg: str) -> None:
        if self.dist.is_main and not self.config.quiet:
            tqdm.write(msg)
