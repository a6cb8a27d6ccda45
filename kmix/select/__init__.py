"""Per-sample scores (`score`: mixing-based kmix-cv, EL2N, GraNd, entropy, margin from checkpoints; forgetting,
AUM, Dyn-Unc from a recorded training run; one file format), subsampling by any score with top/bottom/interval/CCS
sampling and the baselines (`subsample`), the pruning curve."""
from kmix.select.anchored import AnchoredSampler, default_anchor_phi
from kmix.select.checkpoint_scores import (el2n_from_logits, entropy_from_logits, grand_all, grand_last_from_logits,
                                           margin_from_logits, predict)
from kmix.select.dynamics_scores import area_under_margin, dynamic_uncertainty, forgetting_events, load_dynamics
from kmix.select.methods import SCORE_METHODS, ScoreMethod, get_score_method, register_score_method
from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
from kmix.select.score import ScoreConfig, ScoreSpec, run_score, score_losses, summarize_losses
from kmix.select.scores_file import ScoreTable, read_scores, write_score_table, write_scores
from kmix.select.subsample import (METHODS, SAMPLINGS, SubsampleConfig, ccs_default_beta, class_counts, run_subsample,
                                   select_ccs, select_indices)

__all__ = [
    "METHODS", "SAMPLINGS", "SCORE_METHODS", "AnchoredSampler", "PruneCurveConfig", "ScoreConfig", "ScoreMethod",
    "ScoreSpec", "ScoreTable", "SubsampleConfig", "area_under_margin", "ccs_default_beta", "class_counts",
    "default_anchor_phi", "dynamic_uncertainty", "el2n_from_logits", "entropy_from_logits", "forgetting_events",
    "get_score_method", "grand_all", "grand_last_from_logits", "load_dynamics", "margin_from_logits", "predict",
    "read_scores", "register_score_method", "run_prune_curve", "run_score", "run_subsample", "score_losses",
    "select_ccs", "select_indices", "summarize_losses", "write_score_table", "write_scores",
]
