"""Mixing-based sample uncertainty (`score`), subsampling and its baselines (`subsample`), the pruning curve."""
from kmix.select.anchored import AnchoredSampler, default_anchor_phi
from kmix.select.score import ScoreConfig, ScoreSpec, run_score, score_losses, summarize_losses
from kmix.select.scores_file import ScoreTable, read_scores, write_scores

__all__ = ["AnchoredSampler", "ScoreConfig", "ScoreSpec", "ScoreTable", "default_anchor_phi", "read_scores",
           "run_score", "score_losses", "summarize_losses", "write_scores"]
