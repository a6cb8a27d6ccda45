"""`fit(config)`: the training loop — data on the device, mix, SGD, evaluate, checkpoint, resume exactly.

Exact resume rests on three facts: the data order and augmentation are pure functions of
(seed, epoch[, item or step]) (see `kmix.data.order`), the mixer's generator is reseeded from
(seed, rank, step) before every step, and every other RNG (python, numpy, torch) is saved in the
checkpoint per rank and restored. A run resumed from a mid-epoch checkpoint therefore replays the
remaining steps bit for bit. The host waits for the device only every SYNC_EVERY steps, before a
checkpoint and at the end of an epoch; a non-finite loss is found there, named by its step, before
anything is written. With `record_dynamics` the run also records per-sample loss, margin and
correctness every epoch (`kmix.train.dynamics`), kept in `last.pt` and written to `dynamics.pt`.

The parts: `TrainState` (what a step changes and a checkpoint restores, kmix.train.state), the batches
of either pipeline (kmix.train.batches), `RunLog` (what is written for people, kmix.train.run_log) and
`Trainer` below, which holds them and does an epoch's steps and the end of an epoch.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from kmix.data.transforms import cutout
from kmix.devices import resolve_device
from kmix.mix import SoftTargetCrossEntropy, soft_targets
from kmix.runs import (RunFolderBusy, RunStopped, Stream, check_resume, generator_for, lock_run_folder,
                       refuse_unasked_resume, seed_everything, seed_for, set_rng_state)
from kmix.train import distributed as D
from kmix.train.batches import train_batches
from kmix.train.build import (autocast, build_mixer, build_network, build_optimizer, build_scheduler,
                              check_amp, compute_loss, norm_stats, resolve_model_kwargs, warn_if_partners_repeat)
from kmix.train.checkpoint import RunCheckpoints, load_checkpoint, model_meta
from kmix.train.config import RUN_DEFINING, TrainConfig, default_values, upgrade_run_config
from kmix.train.data_setup import build_train_data, resolve_prepare_steps
from kmix.train.dynamics import DynamicsRecorder, run_meta
from kmix.train.evaluate import evaluate_data
from kmix.train.run_log import RunLog, run_summary
from kmix.train.sampling import batches_per_epoch
from kmix.train.state import Progress, TrainState

SYNC_EVERY = 25  # steps between host syncs (loss read-back, NaN check, progress line)


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
    device = resolve_device(config.device, _local_rank())
    dist_info = D.setup(device)
    try:
        config = config.replace(out=config.out or D.broadcast_object(default_out(config), dist_info))
        with _run_folder_lock(config.out, dist_info):
            run = Trainer(config, device, dist_info)  # data, model, mixer, optimizer; a resume loads last.pt
            run.start()  # config.yaml, metrics.jsonl so far, TensorBoard
            try:
                while run.state.progress.epoch < config.epochs:
                    run.train_epoch(stop_after_steps)  # the steps, checkpointing every ckpt_every_steps
                    run.end_epoch()  # evaluate, best.pt, last.pt, metrics.jsonl, the epoch's line
            finally:
                run.log.close()
            return run.finish()  # dynamics.pt, summary.json, curves.png
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


@torch.no_grad()
def clean_logits(model: torch.nn.Module, x: torch.Tensor, amp: str) -> torch.Tensor:
    """Logits of the unmixed batch for the dynamics records of a mixing run: a no-grad forward pass
    in eval mode (BatchNorm's running statistics, no dropout), which changes no state and draws no
    random numbers, so the training run is the same with or without records."""
    model.eval()
    try:
        with autocast(amp, x.device):
            output = model(x)
    finally:
        model.train()
    return output[0] if isinstance(output, (tuple, list)) else output


def check_finite_losses(losses: list[float], progress: Progress, steps_per_epoch: int, last_path: Path) -> None:
    """Stop on the first non-finite loss of the last len(losses) steps, naming its step and what was kept."""
    bad = next((j for j, value in enumerate(losses) if not math.isfinite(value)), None)
    if bad is not None:
        kept = (f"kept the last good checkpoint {last_path}" if last_path.exists() else
                "no checkpoint had been written yet")
        raise FloatingPointError(
            f"loss is {losses[bad]} at epoch {progress.epoch + 1}, step {progress.step_in_epoch - len(losses) + bad + 1}/"
            f"{steps_per_epoch} (global step {progress.global_step - len(losses) + bad + 1}); stopped, {kept}. "
            "Try a lower --lr.")


def load_resume_state(config: TrainConfig, last_path: Path, log: RunLog) -> dict[str, Any] | None:
    """The checkpoint a run continues from (None: a new run), refused unless it is the same run and can
    continue as configured (settings, epochs, dynamics records)."""
    refuse_unasked_resume(last_path, "a run", config.resume)
    if not config.resume:
        return None
    if not last_path.exists():
        log.say(f"no {last_path} yet: starting a new run")
        return None
    state = load_checkpoint(last_path)
    check_resume(upgrade_run_config(state.get("config", {})), config.to_dict(), RUN_DEFINING, source=last_path,
                 defaults=default_values(), hint="resume it with the settings it was started with, or choose another --out")
    done, partial = state.get("epoch", 0), state.get("step_in_epoch", 0)
    if done > config.epochs or (done == config.epochs and partial):
        raise ValueError(f"cannot resume {last_path} with epochs={config.epochs}: the run has already trained "
                         f"{done} epoch(s){f' and {partial} step(s)' if partial else ''}; pass --epochs "
                         f"{done + (1 if partial else 0)} or more, or choose another --out")
    recorded = "dynamics" in state
    if recorded != config.record_dynamics:
        raise ValueError(
            f"cannot resume {last_path} with record_dynamics={config.record_dynamics}: the run was started "
            + ("with --record-dynamics; resume it with --record-dynamics so that its records continue" if recorded
               else "without --record-dynamics, and the steps already trained cannot be recorded afterwards; "
                    "start a new run to record dynamics"))
    return state


def prepare_steps_of(config: TrainConfig, data, device: torch.device, resume_state: dict[str, Any] | None,
                     source: Path) -> int:
    """Steps prepared per call: a resumed run keeps its own (runs from before the setting prepared 1)."""
    if resume_state is None:
        return resolve_prepare_steps(config, data, device)
    saved = resume_state.get("prepare_steps", 1)
    if config.prepare_steps is not None:
        check_resume({"prepare_steps": saved}, {"prepare_steps": config.prepare_steps}, ("prepare_steps",),
                     source=source, hint="resume it without --prepare-steps, or choose another --out")
    return saved


class Trainer:
    """One run's parts — data and its batches, TrainState, mixer, dynamics recorder, RunLog — and what a run
    repeats: an epoch of steps (`train_epoch`) and the end of an epoch (`end_epoch`)."""

    def __init__(self, config: TrainConfig, device: torch.device, dist_info: D.DistInfo):
        check_amp(config.amp, device)
        self.config, self.device, self.dist, self.out = config, device, dist_info, Path(config.out)
        self.last_path, self.best_path = self.out / "last.pt", self.out / "best.pt"
        self.log = RunLog(config, active=dist_info.is_main)
        resume_state = load_resume_state(config, self.last_path, self.log)
        # everything that can fail on bad input fails here, before any training
        self.data = data = build_train_data(config, device, rank=dist_info.rank, world=dist_info.world,
                                            quiet=config.quiet or not dist_info.is_main,
                                            loader=None if resume_state is None else resume_state.get("loader"))
        self.prepare_steps = prepare_steps_of(config, data, device, resume_state, self.last_path)
        self.batches = train_batches(data, config, device, dist_info.rank, dist_info.world, self.prepare_steps)
        self.dynamics = DynamicsRecorder(config.epochs, data.full_train_size, device) if config.record_dynamics else None
        self.prefix = "train_" if data.eval_split == "train" else ""  # summary keys say what was evaluated
        n_train = len(data.train_set)
        self.steps_per_epoch = batches_per_epoch(n_train, config.batch_size, config.limit_train_batches,
                                                 config.keep_last_batch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({n_train} images)")
        if config.batch_size % dist_info.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                             f"{dist_info.world} (it is the global batch)")
        model_kwargs = resolve_model_kwargs(config)
        seed_everything(config.seed)  # identical initial weights on every rank
        model = build_network(config, data.info, model_kwargs).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        mix_generator = torch.Generator()
        self.mixer = build_mixer(config, data.info.num_classes, mix_generator)
        warn_if_partners_repeat(self.mixer, config.batch_size // dist_info.world * self.prepare_steps, dist_info.is_main)
        self.criterion = SoftTargetCrossEntropy()
        optimizer = build_optimizer(config, model)
        self.state = TrainState(model, optimizer, build_scheduler(config, optimizer, self.steps_per_epoch),
                                torch.amp.GradScaler("cuda", enabled=config.amp == "fp16"), mix_generator)
        # the normalisation trained with (norm_mean/norm_std or the dataset's), so checkpoints rebuild it
        mean, std = (list(v) for v in norm_stats(config, data.info))
        self.checkpoints = RunCheckpoints(self.out, {**model_meta(config.model, data.info, **model_kwargs), "mean": mean,
                                                     "std": std, "provenance": data.provenance}, config.to_dict(), dist_info)
        self.pending: list[torch.Tensor] = []  # losses of the steps since the last host sync
        if resume_state is not None:
            self._load(resume_state)
        else:
            seed_everything(seed_for(Stream.RANK, config.seed, dist_info.rank))  # per-rank dropout etc.
        self.ddp = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
                    if dist_info.enabled else model)
        # the module the training step calls: compiled on its first step (evaluation and checkpoints use the model)
        self.step_model = torch.compile(self.ddp) if config.compile else self.ddp

    def _load(self, state: dict[str, Any]) -> None:
        self.state.load(state, self.config, self.steps_per_epoch)
        if self.dynamics is not None:
            self.dynamics.load_state_dict(state["dynamics"])
        rngs = state["rng"]
        if len(rngs) != self.dist.world:
            raise ValueError(f"checkpoint {self.last_path} was written by {len(rngs)} process(es); "
                             f"resume it with the same number (now {self.dist.world})")
        set_rng_state(rngs[self.dist.rank])
        p = self.state.progress
        self.log.say(f"resumed {self.last_path} at epoch {p.epoch + 1}, step {p.step_in_epoch}/{self.steps_per_epoch}")

    def start(self) -> None:
        """Open the run's logs (rank 0) and say what is trained on what."""
        self.t_start = time.perf_counter()
        p, data = self.state.progress, self.data
        self.log.open(p.history, p.epoch, data.eval_split, self.prefix)
        per_call = f", {self.prepare_steps} steps prepared per call" if self.prepare_steps > 1 else ""
        self.log.say(f"training on {len(data.train_set)} images ({data.loader} pipeline{per_call}), evaluating on "
                     f"{data.eval_images} {data.eval_split} images")

    # --- an epoch of steps ----------------------------------------------------------------------------
    def steps(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per remaining step of this epoch: (mixed images, targets, unmixed images, labels, indices).

        Batches are prepared (augmented, cut out, mixed) `prepare_steps` at a time, the calls aligned to
        multiples of it within the epoch and seeded by their first step, so a run resumed inside a call
        prepares the same call again and skips the steps it already trained on."""
        p, per = self.state.progress, self.prepare_steps
        done = p.step_in_epoch
        first_step = p.global_step - done % per
        local = self.config.batch_size // self.dist.world
        for c, (x, y, index) in enumerate(self.batches.epoch(p.epoch, done - done % per, first_step)):
            step = first_step + c * per
            mixed, target = self.mix(x, y, step)
            for i in range(-(-len(y) // local)):  # the last one short: the epoch's partial batch (keep_last_batch)
                if step + i >= p.global_step:
                    part = slice(i * local, min((i + 1) * local, len(y)))
                    yield mixed[part], target[part], x[part], y[part], index[part]

    @torch.no_grad()
    def mix(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cutout, then the mixer (or plain soft targets), with generators seeded by the global `step`."""
        cfg = self.config
        if cfg.cutout:
            x = cutout(x, cfg.cutout, generator_for(Stream.CUTOUT, cfg.seed, self.dist.rank, step))
        if self.mixer is None:
            return x, soft_targets(y, self.data.info.num_classes, cfg.label_smoothing)
        self.state.mix_generator.manual_seed(seed_for(Stream.MIX, cfg.seed, self.dist.rank, step))
        return self.mixer(x, y, check_labels=False)  # labels were validated with the dataset: no host sync

    def train_epoch(self, stop_after_steps: int | None = None) -> None:
        """Train the epoch's remaining steps; sync every SYNC_EVERY steps; checkpoint every ckpt_every_steps
        (and raise TrainingStopped after the checkpoint of global step `stop_after_steps`)."""
        cfg, st, p, rec = self.config, self.state, self.state.progress, self.dynamics
        if hasattr(st.model.net, "drop_path_prob"):
            st.model.net.drop_path_prob = cfg.drop_path * p.epoch / cfg.epochs
        self.ddp.train()
        self.log.start_epoch(p.epoch, self.steps_per_epoch, p.step_in_epoch)
        self.t_mark = self.t_epoch = time.perf_counter()
        self.images_at_epoch_start = p.images
        if rec is not None:
            rec.begin_epoch(p.epoch)
        # records come from the training pass itself when it sees the plain batch, else from an extra pass
        from_training_pass = rec is not None and self.mixer is None
        for x, target, clean, y, index in self.steps():
            if rec is not None and not from_training_pass:
                rec.record(index, clean_logits(st.model, clean, cfg.amp), y)  # before the step: the weights it sees
            out = train_step(self.step_model, x, target, criterion=self.criterion, optimizer=st.optimizer,
                             scaler=st.scaler, scheduler=st.scheduler, amp=cfg.amp, aux_weight=cfg.auxiliary_weight,
                             grad_clip=cfg.grad_clip, keep_logits=from_training_pass)
            if from_training_pass:
                out, logits = out
                rec.record(index, logits, y)
            self.pending.append(out)
            p.global_step += 1
            p.step_in_epoch += 1
            self.log.step()
            at_checkpoint = (cfg.ckpt_every_steps and p.global_step % cfg.ckpt_every_steps == 0
                             and p.step_in_epoch < self.steps_per_epoch)
            stop = stop_after_steps is not None and p.global_step >= stop_after_steps
            if at_checkpoint or stop or len(self.pending) >= SYNC_EVERY:
                self._sync()
            if at_checkpoint or stop:
                if rec is not None:
                    rec.flush(self.dist)
                self._save_last()
                self.t_mark = time.perf_counter()  # checkpoint writing is not training time
            if stop:
                raise TrainingStopped(f"stopped after step {p.global_step} as asked; {self.last_path} holds it")
        self._sync()
        if rec is not None:
            rec.flush(self.dist)  # before the epoch-end checkpoint, which holds the finished row
        self.log.end_epoch()

    def _sync(self) -> None:
        """Wait for the device: read back the pending losses (mean over ranks), stop on a non-finite one
        naming its step, and account images, loss and training time."""
        if not self.pending:
            return
        losses = torch.stack(self.pending).float()
        if self.dist.enabled:
            torch.distributed.all_reduce(losses)
            losses /= self.dist.world
        values, self.pending = losses.tolist(), []
        p = self.state.progress
        check_finite_losses(values, p, self.steps_per_epoch, self.last_path)
        p.account(values, self.config.batch_size, len(self.data.train_set))
        now = time.perf_counter()
        p.train_s += now - self.t_mark  # data + steps since the last sync (not checkpoint writing)
        self.t_mark = now
        self.log.rate(p.loss_sum / p.images, (p.images - self.images_at_epoch_start) / max(now - self.t_epoch, 1e-9))

    # --- the end of an epoch: evaluate, checkpoint, log ----------------------------------------------
    def end_epoch(self) -> None:
        cfg, p = self.config, self.state.progress
        record: dict[str, Any] = {
            "epoch": p.epoch + 1, "train_loss": p.loss_sum / max(p.images, 1),
            "lr": self.state.optimizer.param_groups[0]["lr"], "img_per_s": p.images / max(p.train_s, 1e-9),
            "steps": p.global_step, "images": p.images, "train_s": p.train_s,
        }
        improved = False
        if (p.epoch + 1) % cfg.eval_every == 0 or p.epoch + 1 == cfg.epochs:
            result = evaluate_data(self.state.model, self.data, cfg, self.device, self.dist)
            record.update({"eval_split": self.data.eval_split, f"{self.prefix}eval_loss": result["loss"],
                           f"{self.prefix}top1_err": result["top1_err"], f"{self.prefix}top5_err": result["top5_err"]})
            improved = result["top1_err"] < p.best_top1_err
        record["wall_s"] = self._wall_s()
        p.finish_epoch(record)
        if improved:
            p.best_top1_err, p.best_epoch = record[f"{self.prefix}top1_err"], record["epoch"]
            self.checkpoints.save_best(self.state.model.net, record, self.data.eval_split, self.prefix)
        self._save_last()  # after best.pt: a kill in between redoes this epoch end identically
        self.log.epoch(record, p.history, improved)

    def _wall_s(self) -> float:
        """Wall seconds of the run so far, earlier sessions included."""
        return self.state.progress.wall_before + (time.perf_counter() - self.t_start)

    def _save_last(self) -> None:
        p = self.state.progress
        self.checkpoints.save_last(self.state.state_dict(self._wall_s()), {
            "loader": self.data.loader, "data": self.data.record(), "prepare_steps": self.prepare_steps,
            **({"dynamics": self.dynamics.state_dict()} if self.dynamics is not None else {}),
            "data_order": {"seed": self.config.seed, "epoch": p.epoch, "start_batch": p.step_in_epoch,
                           "rule": "kmix.data.order.epoch_permutation(n, seed, epoch)"}},
            self.state.model.net, f"epoch {p.epoch + 1}, step {p.step_in_epoch}")

    # --- the end of the run --------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """dynamics.pt, summary.json and curves.png (rank 0); the summary."""
        cfg, data = self.config, self.data
        summary = run_summary(
            self.state.progress, self.prefix, wall_s=self._wall_s(), data_record=data.record(),
            params=sum(w.numel() for w in self.state.model.parameters()), device=str(self.device),
            world_size=self.dist.world, data=cfg.data, model=cfg.model, mix=cfg.mix, k=cfg.k, alpha=cfg.alpha,
            out=str(self.out), data_fingerprint=data.provenance["fingerprint"],  # kmix table pools by what the data was
            checkpoints={"last": str(self.last_path), "best": str(self.best_path)})
        if self.dynamics is not None and self.dist.is_main:
            p = self.state.progress
            self.dynamics.save(self.out / "dynamics.pt", p.epoch, torch.as_tensor(data.full_targets, dtype=torch.int64),
                               run_meta(cfg, data.train_indices, p.global_step))
        self.log.finish(summary, self.state.progress.history)
        return summary
