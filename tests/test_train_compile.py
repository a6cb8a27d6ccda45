"""`kmix train --compile`: the model torch.compile'd for the training step, same training, exact resume."""
from __future__ import annotations

import json

import pytest
import torch

from kmix.cli.main import main
from kmix.train import TrainConfig, TrainingStopped, fit
from kmix.train.checkpoint import load_checkpoint


def tiny(out, **kw) -> TrainConfig:
    """A few steps of a width-8 CNN on digits; no dropout, so compiled and eager steps draw nothing different."""
    base = dict(data="digits", model="small_cnn", model_kwargs={"width": 8, "dropout": 0.0}, mix="dcutmix", k=3,
                alpha=1.0, epochs=2, batch_size=32, lr=0.05, limit_train_batches=4, out=str(out), quiet=True,
                tensorboard=False, plot=False, seed=3, threads=1)
    return TrainConfig(**{**base, **kw})


def _losses(out) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def compile_calls(monkeypatch):
    """Records every torch.compile call (the public function, wrapped and still called)."""
    calls = []
    real = torch.compile

    def recording(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", recording)
    return calls


@pytest.mark.slow
def test_compiled_training_matches_eager_training_and_resumes_bit_exactly(tmp_path, compile_calls):
    eager = fit(tiny(tmp_path / "eager"))
    assert compile_calls == []
    compiled = fit(tiny(tmp_path / "compiled", compile=True))
    assert len(compile_calls) == 1 and isinstance(compile_calls[0], torch.nn.Module)
    # the same steps on the same batches: only floating-point rounding of fused kernels differs
    assert _losses(tmp_path / "compiled") == pytest.approx(_losses(tmp_path / "eager"), rel=1e-4)
    assert compiled["steps"] == eager["steps"] == 8
    a, b = load_checkpoint(tmp_path / "eager" / "last.pt")["model"], load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-4, msg=name)
    # a compiled run cut after step 3 and resumed compiled replays the uninterrupted compiled run bit for bit
    with pytest.raises(TrainingStopped):
        fit(tiny(tmp_path / "cut", compile=True, ckpt_every_steps=3), stop_after_steps=3)
    fit(tiny(tmp_path / "cut", compile=True, ckpt_every_steps=3, resume=True))
    c = load_checkpoint(tmp_path / "cut" / "last.pt")["model"]
    for name in b:
        assert torch.equal(b[name], c[name]), name
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "compiled")


def test_cli_compile_flag_reaches_the_config(tmp_path):
    out = tmp_path / "cli"
    assert main(["train", "--data", "digits", "--model", "small_cnn", "--model-arg", "width=8", "--epochs", "1",
                 "--limit-train-batches", "2", "--batch-size", "16", "--compile", "--no-tensorboard", "--no-plot",
                 "--quiet", "--threads", "1", "--out", str(out)]) == 0
    assert "compile: true" in (out / "config.yaml").read_text()
