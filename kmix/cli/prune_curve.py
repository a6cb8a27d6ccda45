"""`kmix prune-curve`: test error vs kept fraction T per subsampling method (the paper's Fig. 5a; the
data-pruning comparison table), under an equal-epochs and/or an equal-steps budget. Its training options are
kmix train's own (TrainConfig's fields and defaults), given to every run."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

from kmix.cli.config_args import add_config_args, given_values
from kmix.options import parse_ints, parse_numbers

# PruneCurveConfig's fields with an option, in --help order (budgets is --budget, train the training options, score
# --draws and --score-seed)
OPTIONS = ("recipe", "checkpoint", "dynamics_run", "ratios", "methods", "seeds", "full", "evals_per_run", "ccs_beta",
           "ccs_bins", "dyn_unc_window", "out", "quiet")
# TrainConfig fields without a prune-curve option: set per run by the curve, or the curve's own --out and --quiet
TRAIN_SKIP = ("seed", "out", "resume", "subset", "quiet")
BUDGET_CHOICES = {"epochs": ("epochs",), "steps": ("steps",), "both": ("epochs", "steps")}


def _train_groups() -> dict[str, list[str]]:
    """kmix train's option groups, less TRAIN_SKIP: {title: TrainConfig field names}."""
    from kmix.cli.train import GROUPS, WHAT
    from kmix.train.config import TrainConfig

    groups = {"what": WHAT, **GROUPS}
    grouped = set(WHAT).union(*GROUPS.values())
    groups["more"] = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("cli", True) and f.name not in grouped)
    return {f"training, {title} (kmix train's options, for every run)": [n for n in names if n not in TRAIN_SKIP]
            for title, names in groups.items() if names}


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.kmix_cv import ScoreSpec
    from kmix.select.prune_curve import PruneCurveConfig
    from kmix.train.config import TrainConfig

    p = sub.add_parser(name, help="train on subsets chosen by each method at each ratio; plot and tabulate error vs T",
                       description="Trains on all data (one run per seed: the T = 1 point; the first seed's run is "
                                   "the scoring model and, for training-dynamics methods, the recorded run), scores "
                                   "the training set once per score method, then for every budget, method, ratio and "
                                   "seed chooses a per-class subset and trains a fresh model on it. Every run is a "
                                   "kmix sweep run: kmix train's options and defaults (over --recipe), with the "
                                   "seed, folder, subset and budget's epochs set per run. Writes table.md and "
                                   "table.csv (kmix table with the budget, method and ratio axes), runs.csv, "
                                   "curve.csv, curve.png and curve.md (mean +- std over seeds) under --out; "
                                   "rerunning skips finished runs and resumes an interrupted one.")
    add_config_args(p, PruneCurveConfig, only=OPTIONS,
                    types={"ratios": parse_numbers, "methods": _names, "seeds": parse_ints})
    p.add_argument("--budget", choices=tuple(BUDGET_CHOICES), default=None,
                   help="epochs: every run trains --epochs epochs; steps: a subset of n images trains "
                        "max(epochs, round(epochs * N / n)) epochs, as many optimiser steps as a full-data run; "
                        "both: each subset is trained both ways (default: epochs)")
    p.add_argument("--equal-steps", action="store_true", help="the same as --budget steps")
    add_config_args(p, ScoreSpec, only=("draws", "seed"), prefix="score_", flags={"seed": "--score-seed"})
    for title, names in _train_groups().items():
        g = p.add_argument_group(title)
        add_config_args(g, TrainConfig, only=names)
        if "model" in names:
            g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                           help="extra model builder argument (YAML value), repeatable")
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
    from kmix.select.kmix_cv import ScoreSpec
    from kmix.select.prune_curve import PruneCurveConfig, run_prune_curve
    from kmix.train.config import TrainConfig

    if args.equal_steps and args.budget not in (None, "steps"):
        raise ValueError(f"--equal-steps is --budget steps; it contradicts --budget {args.budget}")
    budget = "steps" if args.equal_steps else (args.budget or "epochs")
    values = given_values(args, PruneCurveConfig)
    options = {n for names in _train_groups().values() for n in names}
    train = {k: v for k, v in given_values(args, TrainConfig).items() if k in options}
    if args.model_arg:
        train["model_kwargs"] = _model_kwargs(args.model_arg)
    config = PruneCurveConfig(**values, train=train, budgets=BUDGET_CHOICES[budget],
                              score=ScoreSpec(**given_values(args, ScoreSpec, prefix="score_")))
    result = run_prune_curve(config)
    print(result["table"])
    print(json.dumps({"out": result["out"], "runs": result["runs"], "wall_s": result["wall_s"]}))
    return 0
