"""Mixing-based sample uncertainty (`score`), subsampling and its baselines (`subsample`), the pruning curve."""
from kmix.select.anchored import AnchoredSampler, default_anchor_phi
from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
from kmix.select.score import ScoreConfig, ScoreSpec, run_score, score_losses, summarize_losses
from kmix.select.scores_file import ScoreTable, read_scores, write_scores
from kmix.select.subsample import METHODS, SubsampleConfig, class_counts, run_subsample, select_indices

__all__ = [
    "METHODS", "AnchoredSampler", "PruneCurveConfig", "ScoreConfig", "ScoreSpec", "ScoreTable",
    "SubsampleConfig", "class_counts", "default_anchor_phi", "read_scores", "run_prune_curve", "run_score",
    "run_subsample", "score_losses", "select_indices", "summarize_losses", "write_scores",
]
