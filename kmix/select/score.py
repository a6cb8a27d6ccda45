"""`kmix score`: per-image scores of the training set, written in one file format for every method.

`run_score` looks `ScoreConfig.method` up in the registry (`kmix.select.methods`) and runs it. The
config lives in `kmix.select.score_config`; the paper's method, **kmix-cv**, in `kmix.select.kmix_cv`;
the checkpoint-prediction scores (el2n, grand, entropy, margin) in `kmix.select.checkpoint_scores`;
the training-dynamics scores of a recorded run (forgetting, aum, dyn-unc) in
`kmix.select.dynamics_scores`. Their public names are importable from here as before.
"""
from __future__ import annotations

from kmix.select.kmix_cv import (CHUNK_KIND, KMIX_CV, STD_DDOF, ScoreSpec, chunk_anchors, chunk_params, num_chunks,
                                 score_chunk, score_losses, summarize_losses)
from kmix.select.ranks import rank_and_world
from kmix.select.score_config import GRAND_PARAMS, ScoreConfig

__all__ = ["CHUNK_KIND", "GRAND_PARAMS", "KMIX_CV", "STD_DDOF", "ScoreConfig", "ScoreSpec", "chunk_anchors",
           "chunk_params", "num_chunks", "rank_and_world", "run_score", "score_chunk", "score_losses",
           "summarize_losses"]


def run_score(config: ScoreConfig) -> dict:
    """Score every training image of `config.data` by `config.method`; write `config.out` (CSV, + Parquet).

    Returns the method's summary dict (always with out, complete, rank, world_size, wall_s).
    """
    method = config.validate()
    return method.run(config, method)
