"""End-to-end training on digits: outputs, checkpoint reload, exact SIGKILL resume, NaN stop, errors, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from kmix.cli.main import main
from kmix.data.registry import build_dataset
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train.checkpoint import load_checkpoint, load_model
from kmix.train.evaluate import evaluate

from data_sources import tiny_imagefolder

ROOT = Path(__file__).resolve().parents[1]


def tiny(out, **kw) -> TrainConfig:
    """A run of a few seconds: width-8 CNN, batch 32, a few steps per epoch."""
    base = dict(data="digits", model="small_cnn", model_kwargs={"width": 8}, mix="dcutmix", k=3, alpha=1.0,
                epochs=2, batch_size=32, lr=0.05, limit_train_batches=5, out=str(out), quiet=True,
                tensorboard=False, seed=3)
    return TrainConfig(**{**base, **kw})


def test_outputs_summary_and_best_checkpoint_reload(tmp_path):
    out = tmp_path / "run"
    summary = fit(tiny(out, tensorboard=True))
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "last.pt", "best.pt", "curves.png"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert {"train_loss", "top1_err", "top5_err", "lr", "img_per_s", "wall_s"} <= set(lines[0])
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["steps"] == 10
    assert summary["best_top1_err"] == min(r["top1_err"] for r in lines)
    assert summary["top1_err"] == lines[-1]["top1_err"] and 0 <= summary["top5_err"] <= summary["top1_err"]
    saved = TrainConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert saved == tiny(out, tensorboard=True)
    # other commands rebuild the model from the checkpoint alone and get the same error
    model, meta = load_model(out / "best.pt")
    assert meta["name"] == "small_cnn" and meta["kwargs"] == {"width": 8} and meta["input_size"] == 16
    test_set, _ = build_dataset("digits", train=False)
    assert evaluate(model, test_set, device=torch.device("cpu"))["top1_err"] == summary["best_top1_err"]
    # resuming a finished run trains nothing and reports the same numbers
    again = fit(tiny(out, resume=True))
    assert again["steps"] == 10 and again["top1_err"] == summary["top1_err"]
    with pytest.raises(ValueError, match="already holds a run"):
        fit(tiny(out))


def _cli(out, *extra):
    return ["train", "--data", "digits", "--model", "small_cnn", "--model-arg", "width=8", "--mix", "dcutmix",
            "--k", "3", "--alpha", "1/2", "--epochs", "2", "--batch-size", "32", "--lr", "0.05",
            "--limit-train-batches", "10", "--ckpt-every-steps", "3", "--seed", "1", "--no-tensorboard", "--quiet",
            # CPU results depend on the intra-op thread count: the subprocess must use this process's
            "--threads", str(torch.get_num_threads()), "--out", str(out), *extra]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert main(_cli(ref)) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "kmix", *_cli(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not (killed / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no step checkpoint appeared"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = load_checkpoint(killed / "last.pt")
    assert partial["step_in_epoch"] > 0 and partial["global_step"] < 20  # killed mid-epoch
    assert main(_cli(killed, "--resume")) == 0
    a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for ga, gb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(ga["momentum_buffer"], gb["momentum_buffer"])
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "wall_s", "train_s")} for r in rows]
    assert strip(a["history"]) == strip(b["history"])
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 2


def test_nan_loss_from_huge_lr_stops_with_epoch_and_step(tmp_path):
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at epoch 1, step \d+/5"):
        fit(tiny(tmp_path / "r", lr=1e30, epochs=1))


class _NanAfter(nn.Module):
    """A tiny net that returns NaN logits from its `after`-th training forward on; records drop_path_prob."""

    def __init__(self, num_classes, in_chans, after=10**9, aux=False):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)
        self.aux_fc = nn.Linear(4, num_classes)
        self.after, self.aux, self.calls = after, aux, 0
        self.drop_path_prob = 0.0
        self.seen_drop_path: list[float] = []

    def forward(self, x):
        h = self.conv(x).relu().mean((2, 3))
        logits = self.fc(h)
        if self.training:
            self.calls += 1
            self.seen_drop_path.append(self.drop_path_prob)
            if self.calls >= self.after:
                logits = logits * float("nan")
            if self.aux:
                return logits, self.aux_fc(h)
        return logits


def _patch_model(monkeypatch, **kw):
    built = []

    def fake_build_model(name, *, num_classes, in_chans, **kwargs):
        built.append(_NanAfter(num_classes, in_chans, **kw))
        return built[-1]

    monkeypatch.setattr("kmix.train.build.build_model", fake_build_model)
    return built


def test_nan_loss_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    _patch_model(monkeypatch, after=7)
    out = tmp_path / "r"
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 2/5 .*kept the last good checkpoint"):
        fit(tiny(out, ckpt_every_steps=3, model_kwargs={}))
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 6)
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_drop_path_schedule_and_auxiliary_logits(tmp_path, monkeypatch):
    built = _patch_model(monkeypatch, aux=True)
    summary = fit(tiny(tmp_path / "r", epochs=3, limit_train_batches=2, drop_path=0.3, auxiliary_weight=0.4,
                       model_kwargs={}))
    assert summary["steps"] == 6
    assert built[0].seen_drop_path == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.2, 0.2])


def test_subset_limits_the_training_set(tmp_path):
    summary = fit(tiny(tmp_path / "r", epochs=1, limit_train_batches=None, subset=list(range(0, 1000, 10))))
    assert summary["steps"] == 100 // 32


def test_bf16_autocast_and_channels_last_run_on_cpu_and_fp16_is_refused(tmp_path):
    assert fit(tiny(tmp_path / "bf16", epochs=1, limit_train_batches=2, amp="bf16", mix="saliency-dcutmix",
                    channels_last=True))["steps"] == 2
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        fit(tiny(tmp_path / "fp16", amp="fp16", device="cpu"))


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet_nope'"):
        fit(tiny(tmp_path / "a", model="resnet_nope"))
    assert not (tmp_path / "a").exists()
    with pytest.raises((ValueError, FileNotFoundError), match="no_such_dir"):
        fit(tiny(tmp_path / "b", data=str(tmp_path / "no_such_dir")))
    with pytest.raises(ValueError, match="larger than the training set"):
        fit(tiny(tmp_path / "c", batch_size=64, subset=list(range(40))))
    with pytest.raises(FileNotFoundError, match="genotype file not found"):
        fit(tiny(tmp_path / "d", genotype=str(tmp_path / "g.json")))
    fit(tiny(tmp_path / "e", epochs=1, limit_train_batches=1))
    with pytest.raises(ValueError, match=r"other settings \(k: 3 -> 4"):
        fit(tiny(tmp_path / "e", k=4, resume=True))
    with pytest.raises(ValueError, match=r"other settings \(drop_path: 0.0 -> 0.2"):  # changes the loss too
        fit(tiny(tmp_path / "e", epochs=1, limit_train_batches=1, drop_path=0.2, resume=True))


def test_cli_flags_override_recipe_and_errors_exit_2(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mix: dmixup\nk: 4\nalpha: 0.5\nepochs: 5\nbatch_size: 32\nmodel_kwargs: {width: 8}\n")
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--epochs", "1", "--limit-train-batches", "2", "--out", str(out),
                 "--no-tensorboard"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["epochs"] == 1
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["mix"], cfg["k"], cfg["alpha"], cfg["epochs"], cfg["model_kwargs"]) == ("dmixup", 4, 0.5, 1, {"width": 8})
    assert main(["train", "--model", "resnet_nope", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "kmix train: error: unknown model 'resnet_nope'" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("epochz: 3\n")
    assert main(["train", "--recipe", str(tmp_path / "bad.yaml"), "--quiet"]) == 2
    assert "unknown key(s) epochz" in capsys.readouterr().err


def test_resume_with_more_epochs_follows_the_new_schedule(tmp_path):
    out = tmp_path / "r"
    fit(tiny(out, epochs=1, limit_train_batches=2))
    assert load_checkpoint(out / "last.pt")["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)
    summary = fit(tiny(out, epochs=3, limit_train_batches=2, resume=True))
    state = load_checkpoint(out / "last.pt")
    assert summary["steps"] == 6 and state["scheduler"]["lr_lambdas"][0]["epochs"] == 3
    lrs = [r["lr"] for r in state["history"]]
    assert lrs[0] == pytest.approx(0.0) and lrs[1] == pytest.approx(0.05 * 0.25)  # cosine over 3 epochs at step 4/6


@pytest.mark.parametrize("loader", ["workers", "device"])
def test_interrupted_run_with_random_augmentation_resumes_exactly(tmp_path, loader):
    """ImageFolder with random resized crops/flips, by a worker process or on the device: resume replays the same batches."""
    data = str(tiny_imagefolder(tmp_path / "imgs"))
    cfg = dict(data=data, image_size=16, augment=True, batch_size=8, limit_train_batches=None, epochs=2,
               workers=1 if loader == "workers" else 0, loader=loader, mix="saliency-dcutmix")
    ref = fit(tiny(tmp_path / "ref", **cfg))
    assert ref["loader"] == loader
    with pytest.raises(TrainingStopped):  # stands in for a kill right after the step-2 checkpoint
        fit(tiny(tmp_path / "cut", ckpt_every_steps=2, **cfg), stop_after_steps=2)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step_in_epoch"] == 2
    fit(tiny(tmp_path / "cut", ckpt_every_steps=2, resume=True, **cfg))
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["global_step"] == b["global_step"] == 6
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_check_images_names_an_unreadable_file_before_training(tmp_path):
    data = tiny_imagefolder(tmp_path / "imgs")
    (data / "train" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"1 unreadable image\(s\) in the train split .*broken.png"):
        fit(tiny(tmp_path / "r", data=str(data), image_size=16, batch_size=8, check_images=True))
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="check_images applies to ImageFolder data"):
        fit(tiny(tmp_path / "r2", check_images=True))


def test_a_version_1_cutmix_run_resumes_with_its_own_mixer(tmp_path):
    """A run started when `cutmix` meant DCutMix K=2 (config.yaml and last.pt without mix_version) continues
    as DCutMix K=2, bit for bit as an uninterrupted DCutMix K=2 run; it is not turned into the field's CutMix."""
    from kmix.train.checkpoint import save_checkpoint

    cfg = dict(mix="dcutmix", k=2, ckpt_every_steps=2, plot=False)
    fit(tiny(tmp_path / "ref", **cfg))
    old = tmp_path / "old"
    with pytest.raises(TrainingStopped):
        fit(tiny(old, **cfg), stop_after_steps=2)
    added = ("mix_version", "mix_mode", "partners", "keep_last_batch", "norm_mean", "norm_std")

    def as_version_1(values):
        return {**{k: v for k, v in values.items() if k not in added}, "mix": "cutmix"}

    (old / "config.yaml").write_text(yaml.safe_dump(as_version_1(yaml.safe_load((old / "config.yaml").read_text()))))
    state = load_checkpoint(old / "last.pt")
    state["config"] = as_version_1(state["config"])
    save_checkpoint(old / "last.pt", state)
    assert main(["train", "--resume", "--out", str(old)]) == 0
    resumed = yaml.safe_load((old / "config.yaml").read_text())
    assert (resumed["mix"], resumed["k"], resumed["mix_version"]) == ("dcutmix", 2, 2)
    ref, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(old / "last.pt")
    for name in ref["model"]:
        assert torch.equal(ref["model"][name], got["model"][name]), name
    with pytest.raises(ValueError, match="mix"):  # resuming it as today's (field) cutmix is refused
        fit(tiny(old, mix="cutmix", resume=True, epochs=3, plot=False, ckpt_every_steps=2))
