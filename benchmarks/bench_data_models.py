"""Data and model throughput on this machine: CIFAR item access (kmix tensor path vs torchvision's PIL
path), ImageFolder decoding on shared Imagenette (both with 1 intra-op thread, as in a DataLoader worker), and one CPU training step per CIFAR model.

Contenders are interleaved round by round and medians reported (the machine is shared and noisy).
Usage: python benchmarks/bench_data_models.py [--part cifar imagefolder models] [--rounds 5]
"""
from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kmix.data import build_dataset
from kmix.models import build_model

SHARED_IMAGENETTE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenette-224"
MODELS = ("pyramidnet110", "preact_resnet18", "wrn16_8", "resnext29_4x24d", "pyramidnet200")


def _write_fake_cifar10(root: Path, per_batch: int) -> None:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": rng.integers(0, 10, per_batch).tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)


def _timed(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - start


def bench_cifar(rounds: int, n_items: int = 2000) -> None:
    """Per-item cost with augmentation: kmix (uint8 tensor crop/flip) vs torchvision (PIL + ToTensor)."""
    import torchvision
    from torchvision import transforms as T

    with tempfile.TemporaryDirectory() as tmp:
        _write_fake_cifar10(Path(tmp), per_batch=n_items // 5)
        ours, _ = build_dataset("cifar10", root=tmp, augment=True)
        pil_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
        theirs = torchvision.datasets.CIFAR10.__new__(torchvision.datasets.CIFAR10)  # skip its MD5 check
        theirs.data, theirs.targets, theirs.transform, theirs.target_transform = ours.data, ours.targets, pil_tf, None
        times = {"kmix tensor path": [], "torchvision PIL path": []}
        for _ in range(rounds):
            times["kmix tensor path"].append(_timed(lambda i: ours[i], len(ours)))
            times["torchvision PIL path"].append(_timed(lambda i: theirs[i], len(ours)))
        base = statistics.median(times["torchvision PIL path"])
        print(f"\nCIFAR item access with crop+flip, {len(ours)} items, median of {rounds} rounds")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:22s} {1e6 * med / len(ours):7.1f} us/item  {len(ours) / med:8.0f} items/s  {base / med:5.2f}x")


def bench_imagefolder(rounds: int, n_items: int = 200) -> None:
    """Decode + resize/crop speed on Imagenette (JPEG 224) for a few output sizes, one process."""
    if not (SHARED_IMAGENETTE / "train").is_dir():
        print(f"\nImageFolder: skipped, {SHARED_IMAGENETTE} not present")
        return
    sets = {}
    for size in (224, 64):
        for augment in (False, True):
            ds, _ = build_dataset(str(SHARED_IMAGENETTE), train=True, augment=augment, image_size=size)
            sets[f"size {size:3d} {'train aug' if augment else 'eval     '}"] = ds
    stride = len(next(iter(sets.values()))) // n_items
    times = {k: [] for k in sets}
    for _ in range(rounds):
        for name, ds in sets.items():
            times[name].append(_timed(lambda i: ds[i * stride], n_items))
    print(f"\nImageFolder (Imagenette JPEG 224x224) items, {n_items} spread images, median of {rounds} rounds, 1 process")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name}  {1e3 * med / n_items:6.2f} ms/img  {n_items / med:6.0f} img/s")


def bench_models(rounds: int, models: tuple[str, ...] = MODELS, batch: int = 16) -> None:
    """One SGD training step (forward, backward, update) per model on CPU, 32x32x3, CIFAR-100 head."""
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 100, (batch,))
    setups = {}
    for name in models:
        model = build_model(name, num_classes=100).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        setups[name] = (model, opt, sum(p.numel() for p in model.parameters()))

    def step(name: str) -> None:
        model, opt, _ = setups[name]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for name in models:  # warm-up: oneDNN builds its kernels on the first call of each shape
        step(name)
    times = {k: [] for k in models}
    for _ in range(rounds):
        for name in models:
            times[name].append(_timed(lambda i: step(name), 1))
    print(f"\nCPU training step, batch {batch} of 32x32x3, {torch.get_num_threads()} threads, median of {rounds} rounds")
    for name in models:
        med = statistics.median(times[name])
        print(f"  {name:16s} {setups[name][2] / 1e6:6.2f}M params  {1e3 * med:8.0f} ms/step  {batch / med:7.1f} img/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("cifar", "imagefolder", "models"),
                        default=["cifar", "imagefolder", "models"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for the model part")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    # data loading runs in DataLoader workers, which use one intra-op thread each; on a loaded machine a
    # 2-thread OpenMP region around a 150 KB copy can wait ~20 ms for the second core
    torch.set_num_threads(1)
    if "cifar" in args.part:
        bench_cifar(args.rounds)
    if "imagefolder" in args.part:
        bench_imagefolder(args.rounds)
    torch.set_num_threads(args.threads or threads)
    if "models" in args.part:
        bench_models(args.rounds, tuple(args.models))


if __name__ == "__main__":
    main()
