"""`kmix score` and `kmix search` on CUDA, compared with the same command on the CPU.

Scoring draws its composites on the CPU, so both devices score identical composites; only the
model's arithmetic differs. Tolerances on the per-composite losses: rtol = atol = 1e-4 with TF32
off (float32 on both devices, different convolution algorithms), rtol = atol = 1e-2 with torch's
default TF32 convolutions (10-bit mantissa). Search: the same seeded split, order and initial
weights; its losses agree within 2% and its one architecture step moves (nearly) every alpha the
same way on both devices (Adam's first step is +-lr, so only near-zero gradients may differ; TF32
off for this comparison).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cuda_support import CUDA_ONLY, DEVICE, relative_gap, tf32
from kmix.cli.main import main
from kmix.search import SearchNetwork
from kmix.select import read_scores

pytestmark = CUDA_ONLY

DRAWS = 4


def _save_digits_checkpoint(path) -> None:
    """A width-16 small CNN for digits with seeded random weights (scores need no trained model)."""
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=1, width=16)
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=16)})


def _score(tmp_path, ckpt, device: str) -> np.ndarray:
    out = tmp_path / f"scores_{device}.csv"
    rc = main(["score", "--checkpoint", str(ckpt), "--data", "digits", "--draws", str(DRAWS), "--chunk-size", "500",
               "--batch-size", "256", "--device", device, "--out", str(out), "--quiet"])
    assert rc == 0
    table = read_scores(out)
    assert len(table) == 1437
    return np.stack([table.column(f"loss_{m}") for m in range(DRAWS)], 1)


@pytest.mark.parametrize("allow_tf32, tol", [(False, 1e-4), (None, 1e-2)], ids=["fp32", "torch-default-tf32"])
def test_score_on_cuda_matches_cpu(tmp_path, allow_tf32, tol):
    ckpt = tmp_path / "m.pt"
    _save_digits_checkpoint(ckpt)
    cpu = _score(tmp_path, ckpt, "cpu")
    with tf32(allow_tf32):
        gpu = _score(tmp_path, ckpt, DEVICE)
    assert np.isfinite(gpu).all() and gpu.std() > 0
    np.testing.assert_allclose(gpu, cpu, rtol=tol, atol=tol)
    # the statistics subsampling reads follow: mean loss per image
    np.testing.assert_allclose(gpu.mean(1), cpu.mean(1), rtol=tol, atol=tol)


SEARCH_ARGS = ["search", "--data", "digits", "--epochs", "2", "--warmup", "1", "--layers", "4", "--channels", "8",
               "--limit", "80", "--batch-size", "40", "--seed", "3", "--quiet"]


def test_search_two_steps_on_cuda_match_cpu_and_resume(tmp_path):
    """2 epochs on 80 images, batch 40: a warm-up weight step, then an architecture step + a weight step."""
    cpu_out, gpu_out = tmp_path / "search_cpu", tmp_path / "search_device"
    assert main([*SEARCH_ARGS, "--device", "cpu", "--out", str(cpu_out)]) == 0
    with tf32(False):  # float32 on both devices: the alphas' step directions then differ only at ~0 gradients
        assert main([*SEARCH_ARGS, "--device", DEVICE, "--out", str(gpu_out)]) == 0
    cpu, gpu = (json.loads((o / "search.json").read_text()) for o in (cpu_out, gpu_out))
    assert gpu["finished"] and gpu["images_seen_per_epoch"] == [40, 80]
    assert [h["arch_updated"] for h in gpu["history"]] == [False, True]
    for h_gpu, h_cpu in zip(gpu["history"], cpu["history"]):
        for key in ("train_loss", "val_loss"):
            if h_cpu[key] is not None:
                assert relative_gap(h_gpu[key], h_cpu[key]) <= 0.02, (key, h_gpu[key], h_cpu[key])
    # the architecture step ran on the device and moved the alphas like on the CPU
    torch.manual_seed(3)
    init = SearchNetwork(10, in_chans=1, channels=8, layers=4)
    state_gpu = torch.load(gpu_out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    state_cpu = torch.load(cpu_out / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
        step_gpu = state_gpu[name] - getattr(init, name).detach()
        step_cpu = state_cpu[name] - getattr(init, name).detach()
        assert step_gpu.abs().min() > 0, f"{name}: the architecture step left entries unchanged"
        agree = (torch.sign(step_gpu) == torch.sign(step_cpu)).float().mean().item()
        assert agree >= 0.9, f"{name}: only {agree:.0%} of the steps go the CPU's way"
    # resuming the finished run on the device reloads its checkpoint and rewrites the same genotype
    genotype = json.loads((gpu_out / "genotype.json").read_text())
    assert main([*SEARCH_ARGS, "--device", DEVICE, "--out", str(gpu_out), "--resume"]) == 0
    assert json.loads((gpu_out / "genotype.json").read_text()) == genotype
