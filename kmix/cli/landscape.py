"""`kmix landscape`: loss vs Gaussian weight noise for several checkpoints, and the loss surface along the
top-2 Hessian eigenvectors with top eigenvalues and the Hutchinson trace."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_analysis_args, build_config


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.analysis.landscape import LandscapeConfig

    p = sub.add_parser(name, help="loss landscape: loss vs weight noise, Hessian eigenvalues/trace, 2-D surface",
                       description="For each checkpoint: loss under Gaussian weight perturbation (mean and std over "
                                   "--repeats draws per sigma, all checkpoints on one plot), top Hessian "
                                   "eigenvalues (power iteration with deflation), Hessian trace (Hutchinson) and "
                                   "the loss surface along the top-2 eigenvectors (PNG + CSV). BatchNorm is in "
                                   "eval mode (running statistics) and dropout off throughout; the loss is the "
                                   "mean cross-entropy over a fixed --limit subset of the test split.")
    add_analysis_args(p, LandscapeConfig, required=("checkpoints", "out"))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.landscape import LandscapeConfig, run_landscape

    run_landscape(build_config(LandscapeConfig, args))
    return 0
