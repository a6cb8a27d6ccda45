"""`kmix train --record-dynamics`: per-sample loss / margin / correct per epoch, at the right dataset indices,
equal to the forward pass they come from, without changing training, resumed exactly, under DDP."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kmix.data.order import epoch_permutation
from kmix.data.registry import build_dataset
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train import distributed as D
from kmix.train.build import build_network
from kmix.train.checkpoint import load_checkpoint
from kmix.train.dynamics import KIND, DynamicsRecorder, dynamics_from_logits, read_dynamics
from kmix.runs import load_state, save_state, seed_everything

from data_sources import tiny_imagefolder

ROOT = Path(__file__).resolve().parents[1]


def tiny(out, **kw) -> TrainConfig:
    base = dict(data="digits", model="small_cnn", model_kwargs={"width": 4}, mix="dcutmix", k=3, alpha=1.0,
                epochs=2, batch_size=32, lr=0.05, limit_train_batches=3, out=str(out), quiet=True,
                tensorboard=False, plot=False, seed=3, record_dynamics=True)
    return TrainConfig(**{**base, **kw})


def records(run) -> dict:
    return torch.load(Path(run) / "dynamics.pt", weights_only=False)


def assert_same_records(a: dict, b: dict) -> None:
    for name in ("loss", "margin", "correct"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, equal_nan=True, msg=name)


def test_dynamics_from_logits_by_hand():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]])
    target = torch.tensor([0, 2, 1])
    loss, margin, correct = dynamics_from_logits(logits, target)
    torch.testing.assert_close(margin, torch.tensor([1.5, -2.0, 0.0]))
    assert correct.tolist() == [True, False, False]  # a tie is not a right answer
    expected = [-math.log(math.exp(z[y]) / sum(math.exp(v) for v in z))
                for z, y in zip(logits.tolist(), target.tolist())]
    torch.testing.assert_close(loss, torch.tensor(expected))


def test_dynamics_file_is_a_tagged_state_file_and_older_untagged_ones_still_read(tmp_path):
    """dynamics.pt goes through kmix.runs.save_state/load_state: tagged with its kind, checksummed, refused
    as another kind; a file of older kmix (no tag) is read as before."""
    from kmix.io import ChecksumError
    from kmix.select.dynamics_scores import load_dynamics

    rec = DynamicsRecorder(epochs=2, n=3, device="cpu")
    rec.begin_epoch(0)
    rec.record(torch.tensor([0, 2]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    rec.flush(D.DistInfo())
    rec.save(tmp_path / "dynamics.pt", 1, torch.tensor([0, 1, 0]), {"mix": "none"})
    saved = read_dynamics(tmp_path / "dynamics.pt")
    assert saved["kind"] == KIND and saved["epochs"] == 1 and saved["mix"] == "none"
    assert saved["correct"].tolist() == [[True, False, False]] and math.isnan(saved["loss"][0, 1])
    assert load_dynamics(tmp_path)["labels"].tolist() == [0, 1, 0]  # what kmix score reads
    with pytest.raises(ValueError, match="not a kmix-train"):
        load_state(tmp_path / "dynamics.pt", "kmix-train")
    old = {k: v for k, v in saved.items() if k != "kind"}
    torch.save(old, tmp_path / "old.pt")  # untagged, no checksum: kmix before state files were tagged
    assert read_dynamics(tmp_path / "old.pt")["epochs"] == 1
    save_state(tmp_path / "other.pt", "kmix-train", {"model": {}})
    with pytest.raises(ValueError, match="is not a kmix-dynamics dynamics file"):
        read_dynamics(tmp_path / "other.pt")
    data = bytearray((tmp_path / "dynamics.pt").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (tmp_path / "dynamics.pt").write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        read_dynamics(tmp_path / "dynamics.pt")


def test_kmix_score_reads_dynamics_through_load_state(tmp_path):
    """load_dynamics (what kmix score --run reads) goes through read_dynamics: a state file of another kind is
    refused even when it holds every record, a damaged one by its checksum, both naming the file."""
    from kmix.io import ChecksumError
    from kmix.select.dynamics_scores import load_dynamics

    records = {"loss": torch.zeros(1, 3), "margin": torch.zeros(1, 3), "correct": torch.zeros(1, 3, dtype=torch.bool),
               "labels": torch.tensor([0, 1, 0]), "epochs": 1}
    (tmp_path / "other").mkdir()
    save_state(tmp_path / "other" / "dynamics.pt", "kmix-train", records)
    with pytest.raises(ValueError, match=r"other/dynamics.pt is not a kmix-dynamics dynamics file \(it is a kmix-train"):
        load_dynamics(tmp_path / "other")
    (tmp_path / "run").mkdir()
    save_state(tmp_path / "run" / "dynamics.pt", KIND, records)
    assert load_dynamics(tmp_path / "run")["labels"].tolist() == [0, 1, 0]
    data = bytearray((tmp_path / "run" / "dynamics.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "run" / "dynamics.pt").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="run/dynamics.pt"):
        load_dynamics(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="--record-dynamics"):
        load_dynamics(tmp_path / "none")


@pytest.mark.parametrize("mix, mode", [("none", "train"), ("dcutmix", "eval")])
def test_records_are_the_forward_pass_of_the_first_step_at_its_indices(tmp_path, mix, mode, device):
    """Step 1's records equal a forward pass of the initial model on the unmixed first batch: the training
    pass itself (train mode) without a mixer, an eval-mode pass with one; written at the batch's indices.
    On CUDA the records are made on the device and compared with the CPU forward pass."""
    kwargs = {"width": 4, "dropout": 0.0}  # no dropout: train-mode logits without the loop's RNG stream
    config = tiny(tmp_path / "run", mix=mix, augment=False, epochs=1, limit_train_batches=2, model_kwargs=kwargs,
                  device=device)
    fit(config)
    rec = records(tmp_path / "run")
    train_set, info = build_dataset("digits", train=True, augment=False)
    assert rec["loss"].shape == (1, len(train_set)) and rec["loss"].dtype == torch.float16
    assert torch.equal(rec["labels"], torch.tensor(train_set.targets))
    order = epoch_permutation(len(train_set), config.seed, 0)
    seen = ~torch.isnan(rec["loss"][0])
    assert torch.equal(torch.nonzero(seen).flatten(), order[:64].sort().values)  # two batches, nobody else
    assert not rec["correct"][0][~seen].any() and torch.isnan(rec["margin"][0][~seen]).all()

    seed_everything(config.seed)  # the loop builds the initial weights right after this
    model = build_network(config, info, kwargs).train(mode == "train")
    first = order[:32]
    x = torch.stack([train_set[i][0] for i in first.tolist()])
    with torch.no_grad():
        loss, margin, correct = dynamics_from_logits(model(x), torch.tensor(train_set.targets)[first])
    tol = 2e-3 if device == "cpu" else 1e-2  # float16 records; TF32 convolutions on CUDA
    torch.testing.assert_close(rec["loss"][0, first].float(), loss, rtol=tol, atol=tol)
    torch.testing.assert_close(rec["margin"][0, first].float(), margin, rtol=tol, atol=tol)
    clear = margin.abs() > tol  # a margin within rounding of 0 may flip on another device
    assert torch.equal(rec["correct"][0, first][clear], correct[clear])
    assert rec["epochs"] == 1 and ("eval mode" in rec["source"]) == (mode == "eval")


@pytest.mark.parametrize("mix", ["none", "dcutmix"])
def test_recording_changes_nothing_in_training(tmp_path, mix):
    fit(tiny(tmp_path / "rec", mix=mix))
    fit(tiny(tmp_path / "plain", mix=mix, record_dynamics=False))
    a, b = load_checkpoint(tmp_path / "rec" / "last.pt"), load_checkpoint(tmp_path / "plain" / "last.pt")
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert "dynamics" in a and "dynamics" not in b and not (tmp_path / "plain" / "dynamics.pt").exists()


def test_interrupted_run_resumes_its_records_exactly_and_refuses_a_changed_setting(tmp_path):
    cfg = dict(mix="none", epochs=2, limit_train_batches=4, ckpt_every_steps=3)
    fit(tiny(tmp_path / "ref", **cfg))
    with pytest.raises(TrainingStopped):  # mid-epoch 1 (step 3 of 4), then again in epoch 2
        fit(tiny(tmp_path / "cut", **cfg), stop_after_steps=3)
    partial = load_checkpoint(tmp_path / "cut" / "last.pt")["dynamics"]
    assert int((~torch.isnan(partial["loss"][0])).sum()) == 3 * 32 and torch.isnan(partial["loss"][1]).all()
    with pytest.raises(TrainingStopped):
        fit(tiny(tmp_path / "cut", resume=True, **cfg), stop_after_steps=6)
    with pytest.raises(ValueError, match="resume it with --record-dynamics"):
        fit(tiny(tmp_path / "cut", resume=True, record_dynamics=False, **cfg))
    fit(tiny(tmp_path / "cut", resume=True, **cfg))
    assert_same_records(records(tmp_path / "ref"), records(tmp_path / "cut"))
    assert int((~torch.isnan(records(tmp_path / "cut")["loss"])).sum()) == 2 * 4 * 32
    fit(tiny(tmp_path / "plain", record_dynamics=False, epochs=1))
    with pytest.raises(ValueError, match="cannot be recorded afterwards"):
        fit(tiny(tmp_path / "plain", resume=True, epochs=2))


def test_device_pipeline_records_a_subset_in_the_full_index_space_and_resumes(tmp_path):
    """Device-resident pipeline (random resized crops on the device), training on a subset: records sit at
    the subset's indices of the full set, equal to the workers pipeline's, and survive an interruption."""
    data = str(tiny_imagefolder(tmp_path / "imgs"))
    subset = [0, 1, 2, 3, 5, 8, 12, 13, 14, 15, 17, 20, 21, 22, 23, 6]  # 16 of 24 images, unsorted
    cfg = dict(data=data, image_size=16, augment=False, batch_size=8, limit_train_batches=None, epochs=2,
               subset=subset, ckpt_every_steps=1)
    fit(tiny(tmp_path / "dev", loader="device", **cfg))
    fit(tiny(tmp_path / "wrk", loader="workers", **cfg))
    dev, wrk = records(tmp_path / "dev"), records(tmp_path / "wrk")
    assert dev["loss"].shape == (2, 24) and dev["train_indices"] == subset
    for epoch in range(2):
        assert torch.nonzero(~torch.isnan(dev["loss"][epoch])).flatten().tolist() == sorted(subset)
    torch.testing.assert_close(dev["loss"], wrk["loss"], equal_nan=True, rtol=2e-3, atol=2e-3)
    with pytest.raises(TrainingStopped):
        fit(tiny(tmp_path / "cut", loader="device", **cfg), stop_after_steps=3)  # mid-epoch 2
    fit(tiny(tmp_path / "cut", loader="device", resume=True, **cfg))
    assert_same_records(dev, records(tmp_path / "cut"))


@pytest.mark.slow
def test_torchrun_two_processes_record_every_sample_once(tmp_path):
    """Two gloo ranks record their own halves of each batch; rank 0 writes the union. At step 1 both ranks
    hold the initial weights, so the eval-mode records of the first global batch equal one process's."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["train", "--device", "cpu", "--model-arg", "width=4", "--batch-size", "32", "--limit-train-batches",
            "3", "--epochs", "2", "--mix", "dcutmix", "--k", "3", "--alpha", "1", "--no-augment", "--seed", "3",
            "--record-dynamics", "--quiet", "--no-tensorboard", "--no-plot"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "kmix", *args, "--out", str(tmp_path / "ddp")],
                         env=env, capture_output=True, text=True, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "kmix", *args, "--threads", "1", "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = records(tmp_path / "ddp"), records(tmp_path / "one")
    assert torch.equal(torch.isnan(a["loss"]), torch.isnan(b["loss"]))  # the same samples, every epoch
    assert int((~torch.isnan(a["loss"])).sum()) == 2 * 3 * 32
    first = epoch_permutation(a["n"], 3, 0)[:32]
    torch.testing.assert_close(a["loss"][0, first], b["loss"][0, first], rtol=2e-3, atol=2e-3)
    assert torch.equal(a["correct"][0, first], b["correct"][0, first])
