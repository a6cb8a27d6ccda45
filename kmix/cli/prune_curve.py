"""`kmix prune-curve`: test error vs kept fraction T per subsampling method (the paper's Fig. 5a; the
data-pruning comparison table), under an equal-epochs and/or an equal-steps budget."""
from __future__ import annotations

import argparse
import json

from kmix.cli.config_args import add_config_args, given_values
from kmix.options import parse_ints, parse_numbers

# PruneCurveConfig's fields with an option, in --help order (budgets is --budget, model_kwargs --model-arg, score
# --draws and --score-seed)
OPTIONS = ("data", "data_root", "checkpoint", "dynamics_run", "ratios", "methods", "seeds", "full", "epochs", "model",
           "mix", "k", "alpha", "batch_size", "lr", "amp", "channels_last", "limit_train_batches", "evals_per_run",
           "ccs_beta", "ccs_bins", "dyn_unc_window", "device", "threads", "out", "quiet")
BUDGET_CHOICES = {"epochs": ("epochs",), "steps": ("steps",), "both": ("epochs", "steps")}


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.prune_curve import PruneCurveConfig
    from kmix.select.score import ScoreSpec

    p = sub.add_parser(name, help="train on subsets chosen by each method at each ratio; plot and tabulate error vs T",
                       description="Trains on all data (one run per seed: the T = 1 point; the first seed's run is "
                                   "the scoring model and, for training-dynamics methods, the recorded run), scores "
                                   "the training set once per score method, then for every budget, method, ratio and "
                                   "seed chooses a per-class subset and trains a fresh model on it. Writes runs.csv, "
                                   "curve.csv, curve.png and curve.md (mean +- std over seeds) under --out; "
                                   "rerunning skips finished work.")
    add_config_args(p, PruneCurveConfig, only=OPTIONS,
                    types={"ratios": parse_numbers, "methods": _names, "seeds": parse_ints})
    p.add_argument("--budget", choices=tuple(BUDGET_CHOICES), default=None,
                   help="epochs: every run trains --epochs epochs; steps: a subset of n images trains "
                        "max(epochs, round(epochs * N / n)) epochs, as many optimiser steps as a full-data run; "
                        "both: each subset is trained both ways (default: epochs)")
    p.add_argument("--equal-steps", action="store_true", help="the same as --budget steps")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model builder argument (YAML value), repeatable")
    add_config_args(p, ScoreSpec, only=("draws", "seed"), prefix="score_", flags={"seed": "--score-seed"})
    return p


def _names(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


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
    from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
    from kmix.select.score import ScoreSpec

    if args.equal_steps and args.budget not in (None, "steps"):
        raise ValueError(f"--equal-steps is --budget steps; it contradicts --budget {args.budget}")
    budget = "steps" if args.equal_steps else (args.budget or "epochs")
    values = given_values(args, PruneCurveConfig)
    config = PruneCurveConfig(**values, budgets=BUDGET_CHOICES[budget], model_kwargs=_model_kwargs(args.model_arg),
                              score=ScoreSpec(**given_values(args, ScoreSpec, prefix="score_")))
    result = run_prune_curve(config)
    print(result["table"])
    print(json.dumps({"out": result["out"], "runs": result["runs"], "wall_s": result["wall_s"]}))
    return 0
