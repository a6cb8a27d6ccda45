"""`kmix score`'s config: `ScoreConfig` (the method, what it reads, method options, how to run) and its
checks against a method of the registry. kmix-cv's own settings are its `spec` (`kmix.select.kmix_cv.ScoreSpec`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import field, dataclass
from pathlib import Path

from kmix.options import data_option, data_root_option, device_option, option, quiet_option
from kmix.select.kmix_cv import ScoreSpec
from kmix.select.methods import get_score_method
from kmix.select.score_method import DYN_UNC_WINDOW, ScoreMethod


GRAND_PARAMS = ("last", "all")


@dataclass
class ScoreConfig:
    """`kmix score`: the method, what it reads (checkpoints or a run folder) and the data, method options,
    and how to run it.

    checkpoint: one path or several (checkpoint methods average over them; kmix-cv takes one).
    run_dir: a training-run folder with recorded dynamics, read by methods that need "run" (the
    training-dynamics scores); checkpoint methods refuse it.
    spec: kmix-cv's composites (draws, K, alpha, anchor phi, seed, chunk size).
    grand_params: GraNd's gradient, "last" (the classifier layer, closed form) or "all" (every
    parameter, per-sample gradients by torch.func).
    dyn_unc_window: Dyn-Unc's window J, in epochs (He et al. use 10).
    """

    checkpoint: str | os.PathLike | Sequence[str | os.PathLike] = option(
        (), "kmix checkpoint(s) of the scoring model, for kmix-cv (one) and el2n/grand/entropy/margin (averaged over "
            "several, e.g. independent runs)", nargs="+", action="extend")
    data: str = data_option()
    data_root: str | None = data_root_option()
    out: str = option("scores.csv", "output .csv (Parquet twin when pyarrow is installed) or .parquet")
    method: str = option("kmix-cv", "score method")
    run_dir: str | None = option(None, "for forgetting/aum/dyn-unc: a training-run folder recorded with kmix train "
                                       "--record-dynamics (its dynamics.pt)", flag="--run")
    spec: ScoreSpec = field(default_factory=ScoreSpec, metadata={"cli": False})
    grand_params: str = option("last", "grand only: gradient of the classifier layer only (last: exact closed form "
                                       "||p - y|| * sqrt(||h||^2 + 1), a forward pass) or of all parameters (all: "
                                       "per-sample gradients via torch.func, Paul et al.'s definition, slower)",
                               choices=GRAND_PARAMS)
    dyn_unc_window: int = option(DYN_UNC_WINDOW, "dyn-unc only: epochs per sliding window, J (as He et al.)", flag="--window")
    batch_size: int = option(256, "images or composites per forward pass")
    device: str = device_option("cpu", cli_default="auto")
    quiet: bool = quiet_option()
    rank: int | None = None  # None: from torchrun's RANK/WORLD_SIZE (0/1 without torchrun)
    world_size: int | None = None

    @property
    def checkpoints(self) -> tuple[str, ...]:
        """The checkpoint paths as a tuple of strings."""
        if isinstance(self.checkpoint, (str, os.PathLike)):
            return (os.fspath(self.checkpoint),)
        return tuple(os.fspath(c) for c in self.checkpoint)

    def validate(self) -> ScoreMethod:
        """Look up `method` in the registry, `check` this config against it and return it."""
        method = get_score_method(self.method)
        self.check(method)
        return method

    def check(self, method: ScoreMethod) -> None:
        """Raise naming the bad field: output name, batch size, GraNd option, and what `method` needs
        (checkpoints that exist, or a run folder)."""
        if Path(self.out).suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"out must end in .csv or .parquet, got {self.out!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.grand_params not in GRAND_PARAMS:
            raise ValueError(f"grand_params must be one of {', '.join(GRAND_PARAMS)}, got {self.grand_params!r}")
        w = self.dyn_unc_window
        if isinstance(w, bool) or not isinstance(w, int) or w < 2:
            raise ValueError(f"dyn_unc_window (--window) must be an int >= 2 (epochs per window), got {w!r}")
        n = len(self.checkpoints)
        if method.needs == "run":
            if self.run_dir is None:
                raise ValueError(f"--method {method.name} needs --run (a training-run folder with recorded dynamics)")
            if not Path(self.run_dir).is_dir():
                raise FileNotFoundError(f"run folder not found: {self.run_dir}")
            if n:
                raise ValueError(f"--method {method.name} reads --run, not --checkpoint")
            return
        if self.run_dir is not None:
            raise ValueError(f"--run is for methods that read recorded training dynamics, not --method {method.name}")
        if n == 0:
            raise ValueError(f"--method {method.name} needs --checkpoint")
        if method.max_checkpoints is not None and n > method.max_checkpoints:
            raise ValueError(f"--method {method.name} takes at most {method.max_checkpoints} --checkpoint, "
                             f"got {n}: {', '.join(self.checkpoints)}")
        for path in self.checkpoints:
            if not Path(path).is_file():
                raise FileNotFoundError(f"checkpoint not found: {path}")
