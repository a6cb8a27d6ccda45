"""`kmix landscape`: loss vs Gaussian weight noise for several checkpoints, and the loss surface along the
top-2 Hessian eigenvectors with top eigenvalues and the Hutchinson trace."""
from __future__ import annotations

import argparse

from kmix.cli._analysis_common import add_data_args, add_model_args


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="loss landscape: loss vs weight noise, Hessian eigenvalues/trace, 2-D surface",
                       description="For each checkpoint: loss under Gaussian weight perturbation (mean and std over "
                                   "--repeats draws per sigma, all checkpoints on one plot), top Hessian "
                                   "eigenvalues (power iteration with deflation), Hessian trace (Hutchinson) and "
                                   "the loss surface along the top-2 eigenvectors (PNG + CSV). BatchNorm is in "
                                   "eval mode (running statistics) and dropout off throughout; the loss is the "
                                   "mean cross-entropy over a fixed --limit subset of the test split.")
    p.add_argument("--checkpoint", nargs="+", required=True, help="one or more checkpoints")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.05, 0.1],
                   help="noise standard deviations (default: 0 0.01 0.02 0.05 0.1)")
    p.add_argument("--repeats", type=int, default=5, help="draws per sigma > 0 (default: 5)")
    p.add_argument("--noise", choices=("plain", "filter"), default="plain",
                   help="plain: w + sigma*N(0,1) on every weight; filter: per-filter normalised direction "
                        "(Li et al. 2018), biases/BN untouched (default: plain)")
    p.add_argument("--grid", type=int, default=11, help="surface points per axis (default: 11)")
    p.add_argument("--radius", type=float, default=0.25,
                   help="surface extent along each unit eigenvector, in weight-space L2 units (default: 0.25)")
    p.add_argument("--eigen", type=int, default=2, help="top eigenvalues to compute, >= 2 for the surface (default: 2)")
    p.add_argument("--power-iters", type=int, default=50, help="max power iterations per eigenvalue (default: 50)")
    p.add_argument("--trace-samples", type=int, default=20, help="Hutchinson samples, 0 = skip (default: 20)")
    p.add_argument("--no-surface", action="store_true", help="skip the 2-D surface")
    add_model_args(p)
    add_data_args(p, limit=256)
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.analysis.landscape import LandscapeConfig, run_landscape

    run_landscape(LandscapeConfig(
        checkpoints=args.checkpoint, data=args.data, root=args.data_root, out=args.out, sigmas=args.sigmas,
        repeats=args.repeats, noise=args.noise, grid=args.grid, radius=args.radius, eigen=args.eigen,
        power_iters=args.power_iters, trace_samples=args.trace_samples, surface=not args.no_surface,
        limit=args.limit, batch_size=args.batch_size, image_size=args.image_size, arch=args.arch, seed=args.seed,
        device=args.device, quiet=args.quiet))
    return 0
