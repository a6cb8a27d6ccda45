"""`kmix prune-curve`: test error vs kept fraction T per subsampling method (the paper's Fig. 5a; the
data-pruning comparison table), under an equal-epochs and/or an equal-steps budget."""
from __future__ import annotations

import argparse
import json

BUDGET_CHOICES = {"epochs": ("epochs",), "steps": ("steps",), "both": ("epochs", "steps")}


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.subsample import BASELINES, CCS_BINS

    p = sub.add_parser(name, help="train on subsets chosen by each method at each ratio; plot and tabulate error vs T",
                       description="Trains on all data (one run per seed: the T = 1 point; the first seed's run is "
                                   "the scoring model and, for training-dynamics methods, the recorded run), scores "
                                   "the training set once per score method, then for every budget, method, ratio and "
                                   "seed chooses a per-class subset and trains a fresh model on it. Writes runs.csv, "
                                   "curve.csv, curve.png and curve.md (mean +- std over seeds) under --out; "
                                   "rerunning skips finished work.")
    p.add_argument("--data", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoint", default=None,
                   help="scoring model of checkpoint score methods (default: the first seed's full-data run)")
    p.add_argument("--dynamics-run", default=None,
                   help="run folder recorded with kmix train --record-dynamics, for forgetting/aum/dyn-unc (default: "
                        "the first seed's full-data run, trained with --record-dynamics)")
    p.add_argument("--ratios", default="0.1,0.3,0.5", help="kept fractions T (default: 0.1,0.3,0.5)")
    p.add_argument("--methods", default="cv,random",
                   help="comma-separated BY[:ORDER][:SAMPLING]: BY a score column (cv, mean, std, el2n, grand, "
                        f"entropy, margin, forgetting, aum, dyn-unc) or {', '.join(BASELINES)}; ORDER high/low "
                        "(default: the column's hard end); SAMPLING top/bottom/interval/ccs (default top). The "
                        "issue-12 comparison: "
                        "random,cv,cv:ccs,el2n:ccs,forgetting:ccs,aum:ccs (default: cv,random)")
    p.add_argument("--seeds", default="0,1", help="training seeds (default: 0,1)")
    p.add_argument("--no-full", action="store_true", help="skip the full-data runs (needs --checkpoint)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of every run, or of a full-data run (default: 15)")
    p.add_argument("--budget", choices=tuple(BUDGET_CHOICES), default=None,
                   help="epochs: every run trains --epochs epochs; steps: a subset of n images trains "
                        "max(epochs, round(epochs * N / n)) epochs, as many optimiser steps as a full-data run; "
                        "both: each subset is trained both ways (default: epochs)")
    p.add_argument("--equal-steps", action="store_true", help="the same as --budget steps")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model builder argument (YAML value), repeatable")
    p.add_argument("--mix", default="dcutmix", help="training mixer (default: dcutmix)")
    p.add_argument("--k", type=int, default=3, help="training K (default: 3)")
    p.add_argument("--alpha", type=float, default=1.0, help="training Dirichlet alpha (default: 1.0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"), help="mixed precision of every run")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--limit-train-batches", type=int, default=None, help="cap steps per epoch (smoke tests)")
    p.add_argument("--evals-per-run", type=int, default=None,
                   help="evaluate about this many times per run, the last epoch always (default: every epoch)")
    p.add_argument("--draws", type=int, default=10, help="kmix-cv composites per image (default: 10)")
    p.add_argument("--score-seed", type=int, default=0)
    p.add_argument("--ccs-beta", type=float, default=None,
                   help="CCS hard-cut fraction (default: kmix subsample's, 0.3 at T <= 0.1 ... 0 at T >= 0.5)")
    p.add_argument("--ccs-bins", type=int, default=CCS_BINS, help=f"CCS strata (default: {CCS_BINS})")
    p.add_argument("--dyn-unc-window", type=int, default=10, help="Dyn-Unc window J in epochs (default: 10)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default="prune_curve")
    p.add_argument("--quiet", action="store_true")
    return p


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def _model_kwargs(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-arg expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from kmix.cli.score import parse_floats
    from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
    from kmix.select.score import ScoreSpec

    if args.equal_steps and args.budget not in (None, "steps"):
        raise ValueError(f"--equal-steps is --budget steps; it contradicts --budget {args.budget}")
    budget = "steps" if args.equal_steps else (args.budget or "epochs")
    config = PruneCurveConfig(
        data=args.data, data_root=args.data_root, checkpoint=args.checkpoint, dynamics_run=args.dynamics_run,
        ratios=parse_floats(args.ratios, "--ratios"),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        seeds=_ints(args.seeds, "--seeds"), full=not args.no_full, epochs=args.epochs,
        budgets=BUDGET_CHOICES[budget], model=args.model, model_kwargs=_model_kwargs(args.model_arg),
        mix=args.mix, k=args.k, alpha=args.alpha, batch_size=args.batch_size, lr=args.lr, amp=args.amp,
        channels_last=args.channels_last, limit_train_batches=args.limit_train_batches,
        evals_per_run=args.evals_per_run, score=ScoreSpec(draws=args.draws, seed=args.score_seed),
        ccs_beta=args.ccs_beta, ccs_bins=args.ccs_bins, dyn_unc_window=args.dyn_unc_window, out=args.out,
        device=args.device, threads=args.threads, quiet=args.quiet)
    result = run_prune_curve(config)
    print(result["table"])
    print(json.dumps({"out": result["out"], "runs": result["runs"], "wall_s": result["wall_s"]}))
    return 0
