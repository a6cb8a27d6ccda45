"""Training: `fit(TrainConfig(...))` with any mixer, exact resume, DDP under torchrun; checkpoints.

The loop (and torchvision with it) is imported on first use, so commands that only read a TrainConfig
start fast."""
from kmix.train.config import TrainConfig, load_recipe

__all__ = ["TrainConfig", "TrainingStopped", "fit", "load_recipe"]


def __getattr__(name: str):
    if name in ("fit", "TrainingStopped"):
        from kmix.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'kmix.train' has no attribute {name!r}")
