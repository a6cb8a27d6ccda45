"""Analyses of trained models: loss landscape and Hessian tools, FGSM/PGD robustness, MSP-based OOD detection,
top-k evaluation on class subsets. Every function takes any nn.Module mapping [0, 1] images to logits."""
from kmix.analysis.attacks import fgsm, pgd
from kmix.analysis.evaluate import EvalConfig, run_eval, topk_correct
from kmix.analysis.hessian import LossOnData, hutchinson_trace, top_eigenpairs
from kmix.analysis.landscape import LandscapeConfig, loss_surface, loss_vs_sigma, run_landscape
from kmix.analysis.models import LoadedModel, load_analysis_model
from kmix.analysis.ood import OODConfig, fpr_at_tpr, msp_anomaly_score, ood_metrics, run_ood
from kmix.analysis.robustness import AttackConfig, run_attack

__all__ = [
    "AttackConfig", "EvalConfig", "LandscapeConfig", "LoadedModel", "LossOnData", "OODConfig",
    "fgsm", "fpr_at_tpr", "hutchinson_trace", "load_analysis_model", "loss_surface", "loss_vs_sigma",
    "msp_anomaly_score", "ood_metrics", "pgd", "run_attack", "run_eval", "run_landscape", "run_ood",
    "top_eigenpairs", "topk_correct",
]
