"""kmix-cv, the paper's score (mixing-based sample uncertainty): each training image's soft-target CE over M
anchored K-image composites, summarised as mean, std and cv.

Its work is cut into chunks of `chunk_size` anchors; chunk c draws its composites from its own
generator seeded by (seed, c), so scores depend on the seed and chunk size only, never on the
batch size, the number of ranks or restarts. Finished chunks are saved under `<out>.chunks/`
and reused by a restarted run; rank r of W scores chunks r, r+W, ...; rank 0 assembles the file.
Std is the population std (ddof=0) of the M losses; cv = std / mean (0 where mean is 0).
`KMIX_CV` is its entry in the score-method registry (`kmix.select.methods`).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from kmix.data.provenance import data_provenance
from kmix.devices import resolve_device
from kmix.io import ChecksumError, file_sha256, verify_torch_checksum, write_json_atomic
from kmix.mix import SoftTargetCrossEntropy, apply_cutmix, mix_labels
from kmix.options import option
from kmix.runs import RunStopped, check_resume, load_state, lock_run_folder, remove_temp_files, save_state
from kmix.select.anchored import AnchoredSampler, chunk_generator, default_anchor_phi
from kmix.select.bank import ImageBank, dataset_labels
from kmix.select.ranks import distributed, rank_and_world
from kmix.select.score_method import ScoreMethod
from kmix.select.scores_write import write_scores

if TYPE_CHECKING:
    from kmix.select.score_config import ScoreConfig

STD_DDOF = 0  # population std of the M losses
CHUNK_KIND = "kmix-score-chunk"


@dataclass(frozen=True)
class ScoreSpec:
    """Everything the scores depend on (besides model and data): the resume fingerprint."""

    draws: int = option(10, "composites per anchor, M")
    k: int = option(3, "images per composite")
    alpha: tuple[float, ...] = option((2 / 9, 2 / 9), "Dirichlet alpha of the K-1 non-anchor images, "
                                      "comma-separated or one value")
    anchor_phi: float | None = option(None, "the anchor's fixed proportion",
                                      default_text="mean(alpha)/(mean(alpha)+sum(alpha)), 1/3 for the default alpha")
    seed: int = option(0, "seed of the composites")
    chunk_size: int = option(1024, "anchors per resumable chunk; scores depend on seed and chunk size, not batch size")

    def __post_init__(self):
        for name in ("draws", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.draws < 2:
            raise ValueError(f"draws must be >= 2 to measure a spread of losses, got {self.draws}")
        object.__setattr__(self, "alpha", tuple(float(a) for a in self.alpha))
        if self.anchor_phi is None:
            object.__setattr__(self, "anchor_phi", default_anchor_phi(self.alpha))
        self.sampler(2, 2)  # validates k, alpha, anchor_phi

    def sampler(self, height: int, width: int) -> AnchoredSampler:
        """The anchored DCutMix sampler for images of this size."""
        return AnchoredSampler(self.k, self.alpha, float(self.anchor_phi), height, width)


def num_chunks(n: int, chunk_size: int) -> int:
    """How many chunks of `chunk_size` anchors cover n images."""
    return math.ceil(n / chunk_size)


def chunk_anchors(chunk_id: int, n: int, chunk_size: int) -> torch.Tensor:
    """Dataset indices of the anchors of chunk `chunk_id`."""
    return torch.arange(chunk_id * chunk_size, min((chunk_id + 1) * chunk_size, n))


def chunk_params(spec: ScoreSpec, chunk_id: int, n: int, height: int, width: int):
    """The exact composites (MixParams, anchor-major) of chunk `chunk_id`: recomputable for checks."""
    anchors = chunk_anchors(chunk_id, n, spec.chunk_size)
    return spec.sampler(height, width).sample(anchors, spec.draws, n, chunk_generator(spec.seed, chunk_id))


@torch.inference_mode()
def score_chunk(model: nn.Module, bank: ImageBank, onehot: torch.Tensor, spec: ScoreSpec, chunk_id: int,
                batch_size: int) -> torch.Tensor:
    """Losses (anchors in chunk, draws) of the eval-mode `model` on the chunk's composites."""
    n = onehot.shape[0]
    _, h, w = bank.image_shape
    params = chunk_params(spec, chunk_id, n, h, w)
    criterion = SoftTargetCrossEntropy(reduction="none")
    device = onehot.device
    losses = []
    for start in range(0, params.index.shape[0], batch_size):
        index = params.index[start:start + batch_size].to(device)
        boxes = params.boxes[start:start + batch_size].to(device)
        pool, local = bank.pool_for(index)
        mixed, weights = apply_cutmix(pool, local, boxes)
        target = mix_labels(onehot, index, weights)
        losses.append(criterion(model(mixed), target).float().cpu())
    return torch.cat(losses).view(-1, spec.draws)


def summarize_losses(losses: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample mean, std (population, ddof=0) and cv = std / mean of losses (N, M)."""
    losses = losses.double()
    mean = losses.mean(1)
    std = losses.std(1, correction=STD_DDOF)
    cv = torch.where(mean > 0, std / mean.clamp_min(1e-300), torch.zeros_like(mean))
    return {"mean": mean, "std": std, "cv": cv}


def _chunk_path(chunk_dir: Path, chunk_id: int) -> Path:
    return chunk_dir / f"chunk_{chunk_id:06d}.pt"


def _saved_chunk(chunk_dir: Path, chunk_id: int, corrupt: set[int]) -> bool:
    """Whether chunk `chunk_id` is saved and whole. One whose checksum fails is deleted, added to `corrupt`
    and reported in a note line: chunks are a cache, so it is scored again rather than used or refused."""
    path = _chunk_path(chunk_dir, chunk_id)
    if not path.is_file():
        return False
    try:
        verify_torch_checksum(path, "score chunk")
    except ChecksumError as err:
        print(f"kmix score: note: {err}; scoring chunk {chunk_id} again", file=sys.stderr)
        path.unlink(missing_ok=True)
        corrupt.add(chunk_id)
        return False
    return True


def _check_fingerprint(chunk_dir: Path, fingerprint: dict) -> None:
    path = chunk_dir / "spec.json"
    if path.is_file():
        old = json.loads(path.read_text())
        check_resume(old, fingerprint, sorted(set(old) | set(fingerprint)), source=chunk_dir, what="set of chunks",
                     hint="delete that folder or choose another --out")
    else:
        write_json_atomic(path, fingerprint)


def score_losses(model: nn.Module, dataset: Dataset, num_classes: int, spec: ScoreSpec, *,
                 batch_size: int = 256, device: str | torch.device = "cpu", quiet: bool = True,
                 chunk_dir: str | os.PathLike | None = None, fingerprint: dict | None = None,
                 rank: int = 0, world_size: int = 1, counters: dict | None = None,
                 stop_after_chunks: int | None = None) -> torch.Tensor | None:
    """Losses (N, draws) of every image as anchor; None on a rank that cannot assemble them (yet).

    With `chunk_dir`, finished chunks are saved there and reused; rank r of `world_size` scores
    chunks r, r + W, ...; the full matrix is returned once every chunk is available (on rank 0, or
    on any rank when a torch.distributed process group gathers the chunks). `counters["scored"]`
    is set to the number of composites this call scored (reused chunks excluded).
    `stop_after_chunks=N` raises kmix.runs.RunStopped once this call has saved N chunks (resume tests).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if world_size > 1 and chunk_dir is None and not distributed():
        raise ValueError("sharded scoring (world_size > 1) needs chunk_dir or a torch.distributed process group")
    labels = dataset_labels(dataset)
    n = labels.numel()
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"dataset labels span [{int(labels.min())}, {int(labels.max())}] but the model has "
                         f"num_classes={num_classes}: wrong --data for this checkpoint?")
    device = torch.device(device)
    bank = ImageBank(dataset, device)
    onehot = F.one_hot(labels, num_classes).float().to(device)
    total = num_chunks(n, spec.chunk_size)
    mine = list(range(rank, total, world_size))
    done: dict[int, torch.Tensor] = {}
    if chunk_dir is not None:
        chunk_dir = Path(chunk_dir)
        chunk_dir.mkdir(parents=True, exist_ok=True)
        fingerprint = {**asdict(spec), "alpha": list(spec.alpha), "n": n, **(fingerprint or {})}
        _check_fingerprint(chunk_dir, fingerprint)  # every rank: none may add chunks of other settings
    model = model.to(device).eval()
    corrupt: set[int] = set()  # saved chunks whose checksum failed: deleted, scored again
    todo = [c for c in mine if chunk_dir is None or not _saved_chunk(chunk_dir, c, corrupt)]
    bar = tqdm(total=sum(len(chunk_anchors(c, n, spec.chunk_size)) for c in mine), disable=quiet,
               desc=f"score rank {rank}" if world_size > 1 else "score", unit="img")
    bar.update(sum(len(chunk_anchors(c, n, spec.chunk_size)) for c in mine if c not in todo))
    for c in todo:
        losses = score_chunk(model, bank, onehot, spec, c, batch_size)
        if chunk_dir is not None:
            save_state(_chunk_path(chunk_dir, c), CHUNK_KIND, {"chunk": c, "losses": losses})
        done[c] = losses
        bar.update(losses.shape[0])
        if stop_after_chunks is not None and len(done) >= stop_after_chunks:
            bar.close()
            raise RunStopped(f"scoring stopped after {len(done)} chunk(s) (stop_after_chunks={stop_after_chunks})")
    bar.close()
    if counters is not None:
        counters["scored"] = sum(t.numel() for t in done.values())
    if distributed():
        import torch.distributed as dist

        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, done)
        for part in gathered:
            done.update(part)
    elif rank != 0:
        return None  # without a process group, rank 0 assembles from the chunk files
    parts = []
    for c in range(total):
        if c in done:
            parts.append(done[c])
        elif chunk_dir is not None and _saved_chunk(chunk_dir, c, corrupt):  # another rank's chunk
            parts.append(load_state(_chunk_path(chunk_dir, c), CHUNK_KIND, label="score chunk")["losses"])
        elif chunk_dir is not None and c in corrupt:  # another rank's, found corrupt: scored here
            losses = score_chunk(model, bank, onehot, spec, c, batch_size)
            save_state(_chunk_path(chunk_dir, c), CHUNK_KIND, {"chunk": c, "losses": losses})
            parts.append(losses)
        else:
            return None  # another rank has not finished chunk c yet
    return torch.cat(parts)


def run_kmix_cv(config: ScoreConfig, method: ScoreMethod) -> dict:
    """kmix-cv: M anchored composites per image -> mean, std, cv (resumable, sharded under torchrun).

    Summary: n, draws, wall_s, scored_composites, composites_per_s, out, complete, rank, world_size.
    """
    from kmix.data.for_model import train_data_for_model
    from kmix.train.checkpoint import load_model

    checkpoint = config.checkpoints[0]
    rank, world_size = rank_and_world(config)
    # under torchrun a plain "cuda" means this process's GPU (NCCL's object gather uses the current device)
    local_rank = int(os.environ.get("LOCAL_RANK", rank)) if world_size > 1 else None
    device = resolve_device(config.device, local_rank)
    model, meta = load_model(checkpoint, map_location=device)
    dataset, info = train_data_for_model(config.data, meta, root=config.data_root, checkpoint=checkpoint)
    started_group = False
    if world_size > 1 and not distributed() and "MASTER_ADDR" in os.environ:  # under torchrun
        import torch.distributed as dist

        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
        started_group = True
    try:
        return _score_and_write(config, checkpoint, model, meta, dataset, info, device, rank, world_size)
    finally:
        if started_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def _score_and_write(config: ScoreConfig, checkpoint: str, model: nn.Module, meta: dict, dataset: Dataset, info,
                     device,
                     rank: int, world_size: int) -> dict:
    out = Path(config.out)
    chunk_dir = out.with_name(out.name + ".chunks")
    counters: dict = {}
    t0 = time.perf_counter()
    # one process per shard; rank 0's lock also covers the output files, whose killed writes it clears
    with lock_run_folder(chunk_dir, "kmix score", name=f".kmix.lock.rank{rank}"):
        if rank == 0:
            remove_temp_files(out.parent, prefix=out.stem + ".")
        losses = score_losses(model, dataset, meta["num_classes"], config.spec, batch_size=config.batch_size,
                              device=device, quiet=config.quiet, chunk_dir=chunk_dir,
                              fingerprint={"checkpoint_sha256": file_sha256(checkpoint), "data": config.data},
                              rank=rank, world_size=world_size, counters=counters)
        wall = time.perf_counter() - t0
        n = len(dataset)
        summary = {"n": n, "draws": config.spec.draws, "wall_s": round(wall, 3),
                   "scored_composites": counters["scored"],
                   "composites_per_s": round(counters["scored"] / max(wall, 1e-9), 1),
                   "out": str(out), "complete": losses is not None, "rank": rank, "world_size": world_size}
        if losses is not None and rank == 0:
            meta_out = {"checkpoint": checkpoint, "checkpoint_sha256": file_sha256(checkpoint), "data": config.data,
                        "data_provenance": data_provenance(config.data, info, n, config.data_root), "n": n,
                        **asdict(config.spec), "alpha": list(config.spec.alpha), "std_ddof": STD_DDOF}
            written = write_scores(out, dataset_labels(dataset), losses, summarize_losses(losses), meta_out)
            summary["files"] = [str(p) for p in written]
    if losses is not None and rank == 0:
        shutil.rmtree(chunk_dir, ignore_errors=True)
    return summary


KMIX_CV = ScoreMethod(
    name="kmix-cv", needs="checkpoint", columns=("mean", "std", "cv"),
    orders={"mean": "high", "std": "high", "cv": "high"}, run=run_kmix_cv, max_checkpoints=1,
    summary="loss of each image under M anchored K-image DCutMix composites: mean, std (ddof 0), cv = std/mean "
            "(+ loss_0..loss_{M-1})",
    reference="Jeong et al., IEEE Access 2023")
