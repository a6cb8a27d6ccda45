"""The score-method registry: one place that lists every per-sample score `kmix score --method` can write.

Every method writes the same kind of file (`kmix.select.scores_file`): columns `index,label`, then
its score columns, then optional extra columns (per-draw losses, per-checkpoint values), and a JSON
sidecar with `method`, `score_columns` and `orders`. So `kmix subsample --by <column>` takes any
of them, and a method in the registry is picked up by the CLI's `--method` choices, the reader's
checks and subsample's default sort direction without touching those modules. The built-in methods
are the explicit list `BUILTIN_SCORE_METHODS` (each defined in its own module, which imports only
`kmix.select.score_method`, never this registry); `register_score_method` adds another.

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

from collections.abc import Mapping
from types import MappingProxyType

from kmix.select.checkpoint_scores import CHECKPOINT_METHODS
from kmix.select.dynamics_scores import DYNAMICS_METHODS
from kmix.select.kmix_cv import KMIX_CV
from kmix.select.score_method import DYN_UNC_WINDOW, NEEDS, ORDER_VALUES, ScoreMethod

# every method kmix ships, in the order of `--method`'s choices and --help (kmix-cv, the paper's, first)
BUILTIN_SCORE_METHODS: tuple[ScoreMethod, ...] = (KMIX_CV, *CHECKPOINT_METHODS, *DYNAMICS_METHODS)

_REGISTRY: dict[str, ScoreMethod] = {}
SCORE_METHODS: Mapping[str, ScoreMethod] = MappingProxyType(_REGISTRY)  # read-only view, registration order

__all__ = ["BUILTIN_SCORE_METHODS", "DYN_UNC_WINDOW", "NEEDS", "ORDER_VALUES", "SCORE_METHODS", "ScoreMethod",
           "column_orders", "get_score_method", "method_for_columns", "register_score_method", "score_method_names"]


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
    if name not in _REGISTRY:
        raise ValueError(f"unknown score --method {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def score_method_names() -> tuple[str, ...]:
    """Names of all registered methods, in registration order."""
    return tuple(_REGISTRY)


def column_orders() -> dict[str, str]:
    """{score column: default order} over every registered method (columns are unique across methods)."""
    return {c: o for m in _REGISTRY.values() for c, o in m.orders.items()}


def method_for_columns(columns) -> ScoreMethod | None:
    """The registered method whose score columns appear in `columns` (a file header), or None."""
    present = set(columns)
    hits = [m for m in _REGISTRY.values() if present & set(m.columns)]
    return hits[0] if len(hits) == 1 else None


for _method in BUILTIN_SCORE_METHODS:
    register_score_method(_method)
