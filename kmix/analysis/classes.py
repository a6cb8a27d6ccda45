"""Class-subset files (ImageNet-A/O style) and their positions in a model's class order."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from kmix.data.info import class_index


def load_class_list(path: str | os.PathLike) -> list[str]:
    """Read class names/wnids: a JSON list (or {"classes": [...]}) or a text file, one per line, '#' comments."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        obj = json.loads(text)
        if isinstance(obj, dict):
            obj = obj.get("classes")
        if not isinstance(obj, list) or not all(isinstance(c, (str, int)) for c in obj):
            raise ValueError(f"class list {path}: expected a JSON list of names or {{\"classes\": [...]}}")
        names = [str(c) for c in obj]
    else:
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        names = [n for n in names if n]
    if not names:
        raise ValueError(f"class list {path} is empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"class list {path} repeats classes: {dup[:5]}")
    return names


def class_positions(model_classes: Sequence[str], subset: Sequence[str]) -> list[int]:
    """Positions of `subset` in the model's class order; a clear error names the classes the model lacks."""
    if not model_classes:
        raise ValueError("the model's class names are unknown, so a class subset cannot be mapped "
                         "(pass the model's class order, e.g. --model-classes FILE)")
    index = class_index(model_classes)
    missing = [c for c in subset if c not in index]
    if missing:
        raise ValueError(f"class subset does not match the model's classes: {len(missing)} missing, "
                         f"e.g. {missing[:5]} (model has {list(model_classes[:5])}...)")
    return [index[c] for c in subset]

