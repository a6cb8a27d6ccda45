"""Reading what `kmix train` left in a run folder (config.yaml, summary.json, metrics.jsonl): the only
source of every figure a sweep table shows."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kmix.train.config import upgrade_run_config


@dataclass
class RunFolder:
    """One run folder as read from disk; `finished` when summary.json reports the configured epochs."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    history: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.summary.get("epochs") == self.config.get("epochs")

    @property
    def prefix(self) -> str:
        """'train_' when the run evaluated on its training images (kmix train then prefixes the error keys)."""
        split = (self.summary or {}).get("eval_split")
        return "train_" if split == "train" or (split is None and self.config.get("eval_on_train")) else ""

    @property
    def epochs_done(self) -> int:
        """Completed epochs: one metrics.jsonl line each (it is rewritten from the checkpoint on resume)."""
        return len(self.history)


def read_run(path: str | os.PathLike) -> RunFolder:
    """Read a run folder; errors name the file that is missing or unreadable."""
    path = Path(path)
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} is not a run folder (no config.yaml)")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{config_path} is not valid YAML: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} does not hold a mapping of config keys")
    config = upgrade_run_config(config)  # records from before the field's Mixup/CutMix name the K=2 cases
    summary = _read_json(path / "summary.json")
    history = []
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        for n, line in enumerate(metrics.read_text().splitlines(), 1):
            if line.strip():
                try:
                    history.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{metrics} line {n} is not JSON: {err}") from err
    return RunFolder(path, config, summary, history)


def find_runs(paths: list[str | os.PathLike]) -> list[RunFolder]:
    """Every run folder given, or found below a given folder (any depth), each once, in path order."""
    if not paths:
        raise ValueError("no run folders given")
    found: dict[Path, Path] = {}  # resolved -> as given (for display)
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            found.setdefault(p.resolve(), p)
        elif p.is_dir():
            below = sorted(c.parent for c in p.rglob("config.yaml"))
            if not below:
                raise FileNotFoundError(f"no run folders (config.yaml) under {p}")
            for run in below:
                found.setdefault(run.resolve(), run)
        else:
            raise FileNotFoundError(f"run folder not found: {p}")
    return [read_run(p) for p in found.values()]


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON: {err}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return value
