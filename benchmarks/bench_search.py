"""Wall time of one PC-DARTS search epoch on digits: full train set vs random subsets T = 0.5, 0.2, 0.1.

Every contender runs the real `run_search` (1 epoch, no warm-up, so each batch does one architecture
step on the second half and one weight step on the first) with identical settings; contenders are
interleaved over rounds and the median epoch time is reported with its ratio to the full set.
The subset's epoch should cost about T of the full one (the search is linear in the images seen).

    python benchmarks/bench_search.py                      # PC-DARTS supernet (8 cells, C=16), batch 64
    python benchmarks/bench_search.py --layers 5 --channels 8 --rounds 5   # the tiny setting
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from kmix.data.registry import build_dataset
from kmix.data.subset import save_indices
from kmix.search import SearchConfig, run_search


def random_subset(n: int, fraction: float, seed: int) -> list[int]:
    """round(fraction * n) distinct indices of range(n), seeded."""
    k = max(2, round(fraction * n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", default="1.0,0.5,0.2,0.1", help="subset fractions T (1.0 = full set)")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is reported")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared box)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fractions = [float(f) for f in args.fractions.split(",")]
    dataset, _ = build_dataset("digits", train=True)
    n = len(dataset)
    times: dict[float, list[float]] = {f: [] for f in fractions}
    seen: dict[float, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        subsets = {}
        for f in fractions:
            if f < 1.0:
                subsets[f] = str(save_indices(Path(tmp) / f"subset_{f}.json", random_subset(n, f, args.seed)))
        for r in range(args.rounds):
            for f in fractions:
                out = Path(tmp) / f"run_{f}_{r}"
                cfg = SearchConfig(data="digits", subset=subsets.get(f), out=str(out), epochs=1, warmup=0,
                                   layers=args.layers, channels=args.channels, batch_size=args.batch_size,
                                   seed=args.seed, device=args.device, quiet=True)
                summary = run_search(cfg)
                times[f].append(summary["epoch_wall_s"][0])
                seen[f] = summary["images_seen_per_epoch"][0]
                print(f"round {r + 1}/{args.rounds} T={f:g}: {times[f][-1]:.2f} s", file=sys.stderr, flush=True)
    full = statistics.median(times[max(fractions)])
    rows = []
    print(f"# PC-DARTS search epoch on digits (n={n}, 16x16x1), {args.layers} cells, C={args.channels}, "
          f"batch {args.batch_size}, device {args.device}, {args.threads} thread(s), median of {args.rounds}; "
          f"load avg {os.getloadavg()[0]:.1f} (shared, noisy machine)")
    print(f"{'T':>5} {'images/epoch':>13} {'epoch s':>9} {'ms/image':>9} {'ratio':>7}")
    for f in fractions:
        med = statistics.median(times[f])
        rows.append({"fraction": f, "images_seen": seen[f], "epoch_s_median": med, "epoch_s_all": times[f],
                     "ms_per_image": 1000 * med / seen[f], "ratio_to_full": med / full})
        print(f"{f:>5g} {seen[f]:>13d} {med:>9.2f} {1000 * med / seen[f]:>9.2f} {med / full:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "time": time.time(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
