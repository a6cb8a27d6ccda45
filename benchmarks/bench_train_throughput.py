"""Training throughput against its ceiling: img/s of `kmix train` with the device pipeline and with
DataLoader workers, each as a ratio to the model's bare training step on a resident batch.

    python benchmarks/bench_train_throughput.py                      # CPU, small_cnn + resnet20, 32 px, batch 128
    python benchmarks/bench_train_throughput.py --device cuda        # adds --amp bf16 --channels-last
    python benchmarks/bench_train_throughput.py --dry-run            # tiny, CPU, generated data (CI)

(a) ceiling: forward + backward + SGD step of the same network kmix builds (normalisation included)
on one resident batch, soft-target loss, no data, no mixing; (b) `kmix train --loader device`;
(c) `kmix train --loader workers`; on CUDA also (b1), the device pipeline preparing one step per call
(`--prepare-steps 1`) instead of its default 16. (b) and (c) train with DCutMix K=3 (the paper's CIFAR-10
setting) and report the img/s of their second epoch (warm), read from the run's metrics.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kmix.data.registry import build_dataset  # noqa: E402
from kmix.mix import SoftTargetCrossEntropy, soft_targets  # noqa: E402
from kmix.train import TrainConfig, fit  # noqa: E402
from kmix.train.build import autocast, build_network, build_optimizer  # noqa: E402

SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def ceiling(cfg: TrainConfig, info, steps: int, warmup: int = 3) -> float:
    """img/s of the bare training step on one resident batch (the model torch.compile'd as `kmix train
    --compile` does when cfg.compile; its warm-up steps include the compilation)."""
    device = torch.device(cfg.device)
    torch.manual_seed(0)
    model = build_network(cfg, info, dict(cfg.model_kwargs)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(cfg, model)
    if cfg.compile:
        model = torch.compile(model)
    crit = SoftTargetCrossEntropy()
    x = torch.rand(cfg.batch_size, 3, 32, 32, device=device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    target = soft_targets(torch.randint(0, 10, (cfg.batch_size,), device=device), 10, 0.0)

    def step():
        with autocast(cfg.amp, device):
            loss = crit(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * cfg.batch_size / (time.perf_counter() - t)


def flops_per_image(cfg: TrainConfig, info) -> float:
    """Forward + backward FLOPs of one training image (torch.utils.flop_counter over one fp32 batch on the CPU:
    convolutions and matmuls, the work a GPU's tensor-core peak is quoted for)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_network(cfg, info, dict(cfg.model_kwargs))
    x = torch.rand(8, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / len(x)


# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by a substring of the device name
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}


def bf16_peak(name: str) -> float | None:
    """The data-sheet bf16 peak of the named GPU, or None when unknown."""
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def kmix_train(cfg: TrainConfig, steps: int) -> float:
    """img/s of the second (warm) epoch of a real `kmix train` run of `steps` steps per epoch."""
    with tempfile.TemporaryDirectory() as out:
        fit(cfg.replace(out=out, epochs=2, eval_every=2, limit_train_batches=steps))
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return rows[1]["img_per_s"]


def _prepare_steps(cfg: TrainConfig) -> int:
    """The steps per call a `kmix train` of cfg prepares by default (the device pipeline's auto value)."""
    from kmix.train.data_setup import build_train_data, resolve_prepare_steps

    device = torch.device(cfg.device)
    return resolve_prepare_steps(cfg, build_train_data(cfg, device), device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tiny_tree(root: Path) -> Path:
    """A CIFAR-10-layout JPEG tree of random images, for the dry run."""
    import numpy as np
    from PIL import Image

    from kmix.data.cifar import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 2)):
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / name / f"{i}.jpg")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda adds --amp bf16 --channels-last)")
    p.add_argument("--models", nargs="+", default=["small_cnn", "resnet20"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, help="timed steps per measurement (default 30 on CPU, 300 on CUDA)")
    p.add_argument("--workers", type=int, help="DataLoader workers for (c) (default: half the CPU cores, >= 1)")
    p.add_argument("--data-root", help=f"CIFAR-10 source (default {SHARED_TARBALL} when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all of the machine's)")
    p.add_argument("--compile", action="store_true",
                   help="also (a2) the bare step and (b2) kmix train --loader device with the model torch.compile'd")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU with generated data (CI)")
    args = p.parse_args(argv)
    device = "cpu" if args.dry_run else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    tmp = tempfile.TemporaryDirectory()
    if args.dry_run:
        root, steps, batch = str(_tiny_tree(Path(tmp.name) / "c10")), 2, 16
        args.models = args.models[:1]
    else:
        root = args.data_root or (str(SHARED_TARBALL) if SHARED_TARBALL.is_file() else None)
        if root is None:
            p.error("no CIFAR-10 source: pass --data-root (pickle folder, JPEG tree or .tar.gz)")
        steps, batch = args.steps or (300 if device.startswith("cuda") else 30), args.batch_size
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) // 2)
    cuda = device.startswith("cuda")
    _, info = build_dataset("cifar10", root=root, train=True, quiet=False)  # decode once into the cache, untimed
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {threads} thread(s)"
    print(f"# training throughput, {name}, torch {torch.__version__}, batch {batch}, 32 px, "
          f"{'amp bf16 + channels_last, ' if cuda else ''}{steps} timed steps, data {root}\n")
    peak = bf16_peak(name) if cuda else None
    print(f"| model | path | img/s | vs ceiling (a) | TFLOP/s{f' (% of the {peak:g} bf16 peak)' if peak else ''} |")
    print("|---|---|---|---|---|")
    for model in args.models:
        cfg = TrainConfig(data="cifar10", data_root=root, model=model, mix="dcutmix", k=3, alpha=1 / 3,
                          batch_size=batch, device=device, amp="bf16" if cuda else "none", channels_last=cuda,
                          threads=threads, quiet=True, tensorboard=False, plot=False, schedule="constant")
        flops = flops_per_image(cfg, info)

        def row(path: str, rate: float, top: float) -> None:
            tflops = rate * flops / 1e12
            share = f" ({100 * tflops / peak:.1f}%)" if peak else ""
            print(f"| {model} | {path} | {rate:.0f} | {rate / top:.2f}x | {tflops:.3g}{share} |", flush=True)

        top = ceiling(cfg, info, steps)
        row("(a) ceiling: bare step on a resident batch", top, top)
        dev_cfg = cfg.replace(loader="device")
        per = _prepare_steps(dev_cfg)
        row(f"(b) kmix train --loader device ({per} step(s) prepared per call, the default)",
            kmix_train(dev_cfg, steps), top)
        if per > 1:  # what the default buys: one call per step, as before prepare_steps
            row("(b1) kmix train --loader device --prepare-steps 1", kmix_train(dev_cfg.replace(prepare_steps=1), steps),
                top)
        row(f"(c) kmix train --loader workers --workers {workers}",
            kmix_train(cfg.replace(loader="workers", workers=workers), steps), top)
        if args.compile:  # compiled: the bare step and kmix train side by side, both after their compilation
            compiled = ceiling(cfg.replace(compile=True), info, steps)
            row("(a2) bare step, model torch.compile'd", compiled, top)
            run = kmix_train(dev_cfg.replace(compile=True), steps)
            row(f"(b2) kmix train --loader device --compile ({run / compiled:.2f}x (a2))", run, top)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
