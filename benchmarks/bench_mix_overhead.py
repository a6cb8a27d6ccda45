"""Host overhead of a mixer call: microseconds and torch ops per call on a tiny batch (1 thread).

    python benchmarks/bench_mix_overhead.py                      # this tree's kmix.mix
    python benchmarks/bench_mix_overhead.py --baseline 933d55d   # and kmix/mix at a git revision, interleaved
    python benchmarks/bench_mix_overhead.py --dry-run            # 2 rounds: checks the script, not speed

On a tiny batch (default 128x3x2x2) the pixel work is negligible, so the time of a call is what it
costs the host to sample the parameters and launch the ops, the cost that is paid again on every
training step on a GPU. For each mixer (K = 2 and 5) it reports the median over rounds of the time
per call of the whole call, of `sample_params` and of `apply`, and the number of torch ops per call
counted by torch.profiler (every recorded op, nested ones included). Times are the thread's CPU
time (`time.thread_time`), so that waiting for a core on a shared machine is not counted. With --baseline, kmix/mix at
that revision is loaded as a separate package and timed in the same rounds (interleaved), so a
noisy machine slows both alike.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 100
MIXERS = ("DMixup", "DCutMix", "SaliencyDCutMix")


def load_baseline(rev: str, into: Path):
    """kmix/mix at git revision `rev`, imported as the package `_kmix_mix_<rev>` (imports rewritten)."""
    name = f"_kmix_mix_{rev.replace('-', '_').replace('~', '_').replace('^', '_')}"
    pkg = into / name
    pkg.mkdir(parents=True)
    files = subprocess.run(["git", "ls-tree", "--name-only", rev, "kmix/mix/"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for f in files:
        if f.endswith(".py"):
            src = subprocess.run(["git", "show", f"{rev}:{f}"], cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout
            (pkg / Path(f).name).write_text(src.replace("kmix.mix", name))
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def time_per_call(fn, calls: int) -> float:
    """CPU time of this thread per call, in us (time.thread_time: on a shared machine, the time the
    thread waits for a core is left out; what remains is the host work of a call)."""
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls * 1e6


def ops_per_call(fn, calls: int = 20) -> float:
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return sum(e.count for e in prof.key_averages()) / calls


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="git revision whose kmix/mix is timed alongside (e.g. HEAD~3)")
    ap.add_argument("--shape", default="128,3,2,2", help="N,C,H,W of the batch (default 128,3,2,2)")
    ap.add_argument("--k", default="2,5")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=50, help="calls per contender per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.rounds, args.calls = 2, 2
    torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, NUM_CLASSES, (shape[0],), generator=torch.Generator().manual_seed(1))

    impls = {"now": importlib.import_module("kmix.mix")}
    tmp = tempfile.TemporaryDirectory()
    if args.baseline:
        impls[f"at {args.baseline}"] = load_baseline(args.baseline, Path(tmp.name))

    rows = {}  # (mixer, k, impl) -> {part: callable}
    for cls_name in MIXERS:
        for k in (int(v) for v in args.k.split(",")):
            for impl_name, mod in impls.items():
                mix = getattr(mod, cls_name)(num_classes=NUM_CLASSES, k=k, alpha=args.alpha,
                                             generator=torch.Generator().manual_seed(0))
                targets = mod.soft_targets(y, NUM_CLASSES)
                params = mix.sample_params(x)
                rows[(cls_name, k, impl_name)] = {
                    "call": lambda m=mix: m(x, y),
                    "sample": lambda m=mix: m.sample_params(x),
                    "apply": lambda m=mix, t=targets, p=params: m.apply(x, t, p),
                }
    times = {(key, part): [] for key, parts in rows.items() for part in parts}
    for fn_by_part in rows.values():  # warm-up
        for fn in fn_by_part.values():
            time_per_call(fn, 3)
    for _ in range(args.rounds):
        for key, fn_by_part in rows.items():
            for part, fn in fn_by_part.items():
                times[(key, part)].append(time_per_call(fn, args.calls))
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {'x'.join(map(str, shape))}, "
          f"alpha {args.alpha}, median of {args.rounds} rounds x {args.calls} calls")
    print("us: median (min) over rounds; ops: torch.profiler events per call, nested ones included")
    print(f"| mixer | K | impl | call us | ops/call | sample_params us | ops | apply us | ops |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, fn_by_part in rows.items():
        cells = []
        for part in ("call", "sample", "apply"):
            t = times[(key, part)]
            cells.append(f"{statistics.median(t):.0f} ({min(t):.0f})")
            cells.append(f"{ops_per_call(fn_by_part[part], 2 if args.dry_run else 20):.0f}")
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
