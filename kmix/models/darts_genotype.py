"""A DARTS cell genotype: its JSON form, strict validation with errors naming the file and entry, atomic save.

JSON form (genotype.json): {"normal": [[op, input_node], ...], "normal_concat": [2, 3, 4, 5],
"reduce": [...], "reduce_concat": [...]}. Edges come in pairs, one pair per intermediate node;
the pair of node i (0-based) reads states 0..i+1 (0, 1 = the two cell inputs, 2+ = earlier nodes).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from kmix.io import write_json_atomic
from kmix.models.darts_ops import PRIMITIVES

Edge = tuple[str, int]
GENOTYPE_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class Genotype:
    """Normal and reduction cell: (op, input_state) per edge, two edges per node, and the concatenated states."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    @property
    def steps(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal) // 2

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (genotype.json; lists, not tuples)."""
        return {
            "normal": [[op, idx] for op, idx in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, idx] for op, idx in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> "Genotype":
        """Validate and convert the JSON form; `source` (a file name) prefixes every error."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object with keys {list(GENOTYPE_KEYS)}, got {type(data).__name__}")
        missing = [k for k in GENOTYPE_KEYS if k not in data]
        if missing:
            raise ValueError(f"{source}: missing key(s) {missing}; a genotype needs {list(GENOTYPE_KEYS)}")
        normal = _parse_edges(data["normal"], f"{source}: normal")
        reduce = _parse_edges(data["reduce"], f"{source}: reduce")
        if len(normal) != len(reduce):
            raise ValueError(f"{source}: normal has {len(normal)} edges but reduce has {len(reduce)}; they must match")
        steps = len(normal) // 2
        return cls(
            normal=normal,
            normal_concat=_parse_concat(data["normal_concat"], steps, f"{source}: normal_concat"),
            reduce=reduce,
            reduce_concat=_parse_concat(data["reduce_concat"], steps, f"{source}: reduce_concat"),
        )


def _parse_edges(edges: Any, where: str) -> tuple[Edge, ...]:
    if not isinstance(edges, (list, tuple)) or len(edges) == 0 or len(edges) % 2:
        raise ValueError(f"{where}: expected a non-empty list of [op, input_node] pairs, two per node, got {edges!r}")
    out: list[Edge] = []
    for pos, edge in enumerate(edges):
        if not isinstance(edge, (list, tuple)) or len(edge) != 2:
            raise ValueError(f"{where}[{pos}]: expected [op, input_node], got {edge!r}")
        op, idx = edge
        if op not in PRIMITIVES or op == "none":
            raise ValueError(
                f"{where}[{pos}]: unknown op {op!r}; known: {', '.join(p for p in PRIMITIVES if p != 'none')}"
            )
        node = pos // 2
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= node + 1:
            raise ValueError(
                f"{where}[{pos}]: input node {idx!r} out of range for intermediate node {node} (allowed 0..{node + 1})"
            )
        out.append((op, idx))
    return tuple(out)


def _parse_concat(concat: Any, steps: int, where: str) -> tuple[int, ...]:
    allowed = range(2, steps + 2)
    if not isinstance(concat, (list, tuple)) or len(concat) == 0:
        raise ValueError(f"{where}: expected a non-empty list of node indices in {list(allowed)}, got {concat!r}")
    for pos, idx in enumerate(concat):
        if isinstance(idx, bool) or not isinstance(idx, int) or idx not in allowed:
            raise ValueError(f"{where}[{pos}]: node {idx!r} out of range {allowed.start}..{allowed.stop - 1}")
    if len(set(concat)) != len(concat):
        raise ValueError(f"{where}: duplicate node indices in {list(concat)}")
    return tuple(concat)


GenotypeLike = Union[Genotype, dict, str, os.PathLike]


def load_genotype(spec: GenotypeLike) -> Genotype:
    """Accept a Genotype, its dict form, or a path to a genotype JSON file; validate it."""
    if isinstance(spec, Genotype):
        return spec
    if isinstance(spec, dict):
        return Genotype.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"genotype file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"genotype file {path}: not valid JSON: {err}") from err
        return Genotype.from_dict(data, source=f"genotype file {path}")
    raise TypeError(f"genotype must be a Genotype, dict or path to a JSON file, got {type(spec).__name__}")


def save_genotype(path: str | os.PathLike, genotype: Genotype) -> None:
    """Write the genotype JSON atomically (temp file in the same folder, then rename)."""
    write_json_atomic(path, genotype.to_dict(), indent=1)
