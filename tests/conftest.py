"""Shared pytest fixtures: devices to parametrise over, the shared data folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests run tiny models and batches: one intra-op thread avoids thread start/sync costs that
# dominate such ops (and oversubscription when pytest shares the cores with other work).
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def imagenette_root() -> Path:
    root = SHARED_DATA / "imagenette-224"
    if not (root / "train").is_dir():
        pytest.skip(f"shared data not present: {root}")
    return root


def pytest_collection_modifyitems(config, items):
    """Tests run with the `device` fixture set to 'cuda' also carry the `cuda` marker, so that
    `pytest -m cuda` (the GPU check) runs them next to the tests written for CUDA alone."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("device") == "cuda":
            item.add_marker(pytest.mark.cuda)


@pytest.fixture(autouse=True)
def _private_kmix_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches go to the test session's temp folder, never to ~/.cache/kmix."""
    monkeypatch.setenv("KMIX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kmix-cache"))


@pytest.fixture
def cifar10_tarball() -> Path:
    path = SHARED_DATA / "cifar10-jpg.tar.gz"
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    return path
