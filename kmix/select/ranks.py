"""Which process this is in a sharded `kmix score`: rank and world size from the config or torchrun's
environment, and whether a torch.distributed process group is running. Shared by every score method."""
from __future__ import annotations

import os


def distributed() -> bool:
    """Whether a torch.distributed process group is initialised in this process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank_and_world(config) -> tuple[int, int]:
    """(rank, world size): the config's `rank`/`world_size`, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if config.rank is not None or config.world_size is not None:
        return int(config.rank or 0), int(config.world_size or 1)
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
