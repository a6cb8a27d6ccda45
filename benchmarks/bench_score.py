"""Scoring throughput (anchored K-image DCutMix composites per second, losses included) against plain
inference throughput (images per second) of the same model at the same batch size, in one run.

    python benchmarks/bench_score.py                  # small_cnn on digits, preact_resnet18 on 32x32
    python benchmarks/bench_score.py --rounds 5 --device cuda --json bench_score.json
    python benchmarks/bench_score.py --dry-run        # tiny sets, 1 round: checks the script, measures nothing

Per round each contender processes the same number of images once (interleaved: score, plain, score,
...), so a noisy machine slows both alike; medians over rounds are reported. Scoring time includes
drawing the parameters (per chunk), gathering pixels from the whole dataset, labels and the loss;
plain inference reads consecutive slices of a preloaded tensor of as many images (its best case).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.data import TensorDataset

from kmix.models import build_model
from kmix.select.score import ScoreSpec, score_losses


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def plain_inference(model, images: torch.Tensor, batch_size: int) -> None:
    """Forward all of `images` in consecutive full batches of `batch_size` (the last may be short)."""
    for start in range(0, images.shape[0], batch_size):
        model(images[start:start + batch_size])


def bench_case(name: str, model, dataset, num_classes: int, *, draws: int, batch_size: int, rounds: int,
               device: torch.device) -> dict:
    """Interleaved medians of composites/s (scoring) and images/s (plain inference)."""
    model = model.to(device).eval()
    n = len(dataset)
    total = n * draws
    spec = ScoreSpec(draws=draws, chunk_size=n)
    reps = -(-total // n)
    images = dataset.tensors[0].to(device).repeat(reps, 1, 1, 1)[:total].contiguous()  # same count, same batches
    score_losses(model, dataset, num_classes, spec, batch_size=batch_size, device=device)  # warm-up
    plain_inference(model, images[:4 * batch_size], batch_size)
    score_t, plain_t = [], []
    for _ in range(rounds):
        _sync(device)
        t0 = time.perf_counter()
        score_losses(model, dataset, num_classes, spec, batch_size=batch_size, device=device)
        _sync(device)
        t1 = time.perf_counter()
        plain_inference(model, images, batch_size)
        _sync(device)
        t2 = time.perf_counter()
        score_t.append(t1 - t0)
        plain_t.append(t2 - t1)
    s, p = statistics.median(score_t), statistics.median(plain_t)
    row = {"case": name, "device": str(device), "batch_size": batch_size, "images": total,
           "score_ms": round(1e3 * s, 1), "plain_ms": round(1e3 * p, 1),
           "score_composites_per_s": round(total / s, 1), "plain_images_per_s": round(total / p, 1),
           "ratio": round(p / s, 3)}
    print(f"{name:34s} {row['score_composites_per_s']:>10.1f} comp/s  {row['plain_images_per_s']:>10.1f} img/s  "
          f"ratio {row['ratio']:.3f}  (median of {rounds}, {total} images, batch {batch_size})", flush=True)
    return row


TARGET_RATIO = 0.95  # the target: scoring throughput >= 0.95x plain inference


def _first(dataset, n: int) -> TensorDataset:
    """The first n images of a TensorDataset, with the `.targets` list scoring reads."""
    images, labels = (t[:n] for t in dataset.tensors)
    out = TensorDataset(images, labels)
    out.targets = labels.tolist()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5, dry run 1)")
    parser.add_argument("--draws", type=int, default=None, help="composites per image (default 4, dry run 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cifar-images", type=int, default=None,
                        help="random 32x32 images for the CIFAR case (default 256 on CPU, 2048 on CUDA, dry run 8)")
    parser.add_argument("--cifar-model", default=None,
                        help="model of the CIFAR-size case (default preact_resnet18, dry run small_cnn)")
    parser.add_argument("--dry-run", action="store_true",
                        help="96 digits, 8 CIFAR-size images, small_cnn, 1 round: checks the script, measures nothing")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available")
    rounds = args.rounds or (1 if args.dry_run else 5)
    draws = args.draws or (2 if args.dry_run else 4)
    cifar_model = args.cifar_model or ("small_cnn" if args.dry_run else "preact_resnet18")
    cifar_images = args.cifar_images or (8 if args.dry_run else 2048 if device.type == "cuda" else 256)
    torch.manual_seed(0)
    print(f"bench_score: torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + "; shared machines are noisy: compare the ratio, not absolute numbers"
          + (" (DRY RUN: tiny sets)" if args.dry_run else ""), flush=True)
    rows = []

    from kmix.data.digits import DigitsDataset
    from kmix.models import Normalized

    digits = DigitsDataset(train=True)
    if args.dry_run:
        digits = _first(digits, 96)
    net = Normalized(build_model("small_cnn", num_classes=10, in_chans=1), [0.3], [0.4])
    rows.append(bench_case("small_cnn / digits 1x16x16", net, digits, 10, draws=draws, batch_size=256,
                           rounds=rounds, device=device))
    try:
        net = build_model(cifar_model, num_classes=10, in_chans=3)
    except ValueError as err:
        print(f"skipping the CIFAR-size case: {err}")
    else:
        g = torch.Generator().manual_seed(0)
        n = cifar_images
        fake = TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
        fake.targets = fake.tensors[1].tolist()
        rows.append(bench_case(f"{cifar_model} / random 3x32x32", net, fake, 10, draws=draws, batch_size=128,
                               rounds=rounds, device=device))
    print("target: scoring >= {:.2f}x plain inference: ".format(TARGET_RATIO) + "; ".join(
        f"{r['case']} {r['ratio']:.3f}x ({'met' if r['ratio'] >= TARGET_RATIO else 'missed'})" for r in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
