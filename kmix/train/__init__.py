"""Training: `fit(TrainConfig(...))` with any mixer, exact resume, DDP under torchrun; checkpoints."""
from kmix.train.config import TrainConfig, load_recipe
from kmix.train.loop import TrainingStopped, fit

__all__ = ["TrainConfig", "TrainingStopped", "fit", "load_recipe"]
