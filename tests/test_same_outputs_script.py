"""benchmarks/same_outputs.py: the bit-for-bit check of `kmix train` outputs finds equal runs equal and a
different run different."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from kmix.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("same_outputs", ROOT / "benchmarks" / "same_outputs.py")
same_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_outputs)


def _run(out: Path, **kw) -> Path:
    fit(TrainConfig(**{**dict(data="digits", model="small_cnn", model_kwargs={"width": 8}, epochs=2, batch_size=32,
                              limit_train_batches=3, record_dynamics=True, threads=1, quiet=True,
                              tensorboard=False, plot=False, out=str(out)), **kw}))
    return out


def test_equal_runs_are_identical_and_another_seed_is_not(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    assert same_outputs.differences(a, b) == []
    other = same_outputs.differences(a, _run(tmp_path / "c", seed=1))
    assert "metrics.jsonl" in other and "last.pt:model" in other and "dynamics.pt:loss" in other

