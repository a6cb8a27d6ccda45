"""Dispatched aten ops per call: the CPU-measurable proxy for a mixer's host cost and GPU kernel launches."""
from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active (views and metadata ops included), by name."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def ops_per_call(fn, warmup: int = 1) -> tuple[int, Counter]:
    """(total, by name) dispatched aten ops of one call of `fn()`, after `warmup` calls (which fill caches)."""
    for _ in range(warmup):
        fn()
    with OpCounter() as counter:
        fn()
    return sum(counter.ops.values()), counter.ops
