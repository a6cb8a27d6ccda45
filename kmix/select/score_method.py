"""What a per-sample score method is (`ScoreMethod`): its name, what it reads, its score columns and their
default orders, and the function that writes its scores file. The registry of methods is
`kmix.select.methods`; the methods themselves live in `kmix.select.kmix_cv`,
`kmix.select.checkpoint_scores` and `kmix.select.dynamics_scores`, which import this module only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

NEEDS = ("checkpoint", "run")
DYN_UNC_WINDOW = 10  # Dyn-Unc's window J in epochs: 10 in He et al. (their experiments and code default)
ORDER_VALUES = ("high", "low")


@dataclass(frozen=True)
class ScoreMethod:
    """One entry of the registry.

    name: the `--method` value; needs: "checkpoint" or "run" (see the module docstring);
    columns: the score columns it always writes, in file order; orders: column -> "high"/"low",
    the end ranked first by default; run: `run(config, method) -> summary dict` does the work and
    writes the file; per_checkpoint: for checkpoint methods using the shared runner, the function
    giving one float64 value per image for one model; max_checkpoints: None = any number (values
    are averaged); summary and reference: one line each for `--help` and the docs.
    """

    name: str
    needs: str
    columns: tuple[str, ...]
    orders: Mapping[str, str]
    run: Callable
    summary: str
    reference: str
    per_checkpoint: Callable | None = None
    max_checkpoints: int | None = None

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"score method {self.name!r}: needs must be one of {', '.join(NEEDS)}, got {self.needs!r}")
        if not self.columns:
            raise ValueError(f"score method {self.name!r} declares no score columns")
        bad = {c: o for c, o in self.orders.items() if c not in self.columns or o not in ORDER_VALUES}
        if bad or set(self.orders) != set(self.columns):
            raise ValueError(f"score method {self.name!r}: orders must give 'high' or 'low' for each of "
                             f"{list(self.columns)}, got {dict(self.orders)}")
        object.__setattr__(self, "orders", MappingProxyType(dict(self.orders)))
