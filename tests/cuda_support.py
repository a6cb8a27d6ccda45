"""Shared by the tests marked `cuda`: the skip rule, a TF32 switch, and running kmix in a subprocess.

Not a test module (pytest collects only test_*.py); the test_cuda_*.py files import it.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
# KMIX_CUDA_TESTS_ON_CPU=1 runs the CUDA tests with "cpu" in place of "cuda": a check of the tests'
# own code on a machine without a GPU (it proves nothing about CUDA). Tests that need CUDA itself
# (fp16 GradScaler, NCCL) skip in that mode.
ON_CPU = os.environ.get("KMIX_CUDA_TESTS_ON_CPU") == "1"
DEVICE = "cpu" if ON_CPU else "cuda"

# KMIX_REQUIRE_CUDA=1 (set by benchmarks/gpu_check.sh on a GPU machine): no skipping, so a machine
# where torch sees no GPU fails these tests instead of passing them silently
REQUIRE_CUDA = os.environ.get("KMIX_REQUIRE_CUDA") == "1"

# `pytestmark = CUDA_ONLY` at the top of a module: marked `cuda`, skipped cleanly without a GPU
CUDA_ONLY = [pytest.mark.cuda,
             pytest.mark.skipif(not (HAS_CUDA or ON_CPU or REQUIRE_CUDA),
                                reason="needs a CUDA device (torch.cuda.is_available() is False)")]
REAL_CUDA_ONLY = pytest.mark.skipif(ON_CPU, reason="needs real CUDA (KMIX_CUDA_TESTS_ON_CPU=1 runs on the CPU)")


def sync() -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def tf32(enabled: bool | None) -> Iterator[None]:
    """Allow or forbid TF32 in cuDNN convolutions and cuBLAS matmuls inside the block (restored after);
    None leaves torch's defaults (TF32 convolutions on, TF32 matmuls off).

    With TF32 convolutions CUDA float32 results differ from CPU ones by ~1e-3 relative; with TF32
    off they agree to float32 rounding.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if enabled is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def run_python(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python *args` from the repository root with kmix importable (no install needed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def relative_gap(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|, 1e-12): how far apart two positive metrics are, as a fraction."""
    return abs(a - b) / max(abs(a), abs(b), 1e-12)
