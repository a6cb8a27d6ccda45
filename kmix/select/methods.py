"""The score-method registry: one place that lists every per-sample score `kmix score --method` can write.

Every method writes the same kind of file (`kmix.select.scores_file`): columns `index,label`, then
its score columns, then optional extra columns (per-draw losses, per-checkpoint values), and a JSON
sidecar with `method`, `score_columns` and `orders`. So `kmix subsample --by <column>` takes any
of them, and a method added here is picked up by the CLI's `--method` choices, the reader's checks
and subsample's default sort direction without touching those modules.

A method says what it `needs`:
- "checkpoint": kmix checkpoints (`--checkpoint`, one or several) and the training data (`--data`);
  `per_checkpoint(model, dataset, labels, config=...)` returns one value per image, and the shared
  runner averages it over the checkpoints (`kmix.select.checkpoint_scores.run_checkpoint_score`).
- "run": a training-run folder with recorded dynamics (`--run RUN_DIR`): the training-dynamics
  scores (forgetting events, AUM, Dyn-Unc, `kmix.select.dynamics_scores`) that read the per-epoch
  records of `kmix train --record-dynamics`; such a method registers its own `run` callable and
  needs no `per_checkpoint`.

`orders` names, per score column, the end that ranks first by default ("high": largest first):
the end the method's authors call hard / important. `kmix subsample --order` overrides it, and
`--sampling ccs` drops the first (hardest) beta fraction of that ranking.
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


_REGISTRY: dict[str, ScoreMethod] = {}
SCORE_METHODS: Mapping[str, ScoreMethod] = MappingProxyType(_REGISTRY)  # read-only view, registration order


def register_score_method(method: ScoreMethod) -> ScoreMethod:
    """Add `method` to the registry; a name or a score column already taken by another method is refused."""
    if method.name in _REGISTRY:
        raise ValueError(f"score method {method.name!r} is already registered")
    for other in _REGISTRY.values():
        clash = set(other.columns) & set(method.columns)
        if clash:
            raise ValueError(f"score method {method.name!r}: column(s) {sorted(clash)} already belong to "
                             f"{other.name!r}")
    _REGISTRY[method.name] = method
    return method


def get_score_method(name: str) -> ScoreMethod:
    """The registered method `name`, or a ValueError listing the choices."""
    _ensure_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown score --method {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def score_method_names() -> tuple[str, ...]:
    """Names of all registered methods, in registration order."""
    _ensure_builtins()
    return tuple(_REGISTRY)


def column_orders() -> dict[str, str]:
    """{score column: default order} over every registered method (columns are unique across methods)."""
    _ensure_builtins()
    return {c: o for m in _REGISTRY.values() for c, o in m.orders.items()}


def method_for_columns(columns) -> ScoreMethod | None:
    """The registered method whose score columns appear in `columns` (a file header), or None."""
    _ensure_builtins()
    present = set(columns)
    hits = [m for m in _REGISTRY.values() if present & set(m.columns)]
    return hits[0] if len(hits) == 1 else None


def _ensure_builtins() -> None:
    """Register the built-in methods (their modules import this one, so they cannot be imported at the top)."""
    import kmix.select.score  # noqa: F401  (registers kmix-cv)
    import kmix.select.checkpoint_scores  # noqa: F401  (registers el2n, grand, entropy, margin)
    import kmix.select.dynamics_scores  # noqa: F401  (registers forgetting, aum, dyn-unc)
