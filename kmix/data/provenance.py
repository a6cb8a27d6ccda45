"""What an artifact records of the data it was made from, so that a consumer can check it is about to use
the same: the spec and root, a fingerprint of the files, the class names, the number of images, the
image size and channels."""
from __future__ import annotations

import os
from typing import Any

from kmix.data.cache import fingerprint
from kmix.data.info import DatasetInfo
from kmix.data.registry import DATASET_NAMES


def data_provenance(spec: str, info: DatasetInfo, num_images: int, root: str | None = None) -> dict[str, Any]:
    """The record: `fingerprint` digests the source files' names, sizes and mtimes (None for digits, which
    ships inside scikit-learn, and for a CIFAR root that is not there)."""
    source = spec if spec not in DATASET_NAMES else (root if spec != "digits" else None)
    return {"data": str(spec), "root": None if root is None else str(root),
            "fingerprint": fingerprint(source) if source is not None and os.path.exists(source) else None,
            "classes": list(info.class_names), "num_images": int(num_images), "image_size": int(info.input_size),
            "in_chans": int(info.in_chans)}
