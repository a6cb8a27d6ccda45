"""How a table row or a curve's legend names a method and shows a config value: `method_label` and `plain`,
shared by `kmix.sweep.table` (table.md) and `kmix.sweep.curves` (curves.png)."""
from __future__ import annotations

import json
from typing import Any

from kmix.mix import MIXER_REGISTRY, mixer_label


def method_label(row_or_key: dict[str, Any]) -> str:
    """'vanilla', 'cutmix alpha=1 p=0.5', 'dcutmix K=2 (box inside) alpha=1 p=1', 'dcutmix K=3 alpha=0.333 p=1'."""
    mix, k = row_or_key.get("mix"), row_or_key.get("k")
    if mix == "none":
        return "vanilla"
    label = mixer_label(mix, k)
    if label == mix and MIXER_REGISTRY.get(mix) is not None and not MIXER_REGISTRY[mix].two_image:
        label += f" K={k}"
    return f"{label} alpha={plain(row_or_key.get('alpha'))} p={plain(row_or_key.get('p'))}"


def plain(value: Any, limit: int = 60) -> str:
    """A config value for a table cell or legend: 3 significant digits, long lists/paths shortened."""
    if isinstance(value, float):
        return f"{value:.3g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else "—" if value is None else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
