"""`kmix train`: parse flags, merge them over a recipe (or a resumed run's config.yaml), call `fit`."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from kmix.cli.config_args import add_config_args, given_values
from kmix.train.config import TrainConfig, default_values, recipe_values, upgrade_run_config

# TrainConfig's fields by --help group (model_kwargs is --model-arg, merged over the recipe's)
WHAT = ("data", "data_root", "download", "augment", "norm_mean", "norm_std", "check_images", "image_size", "subset", "val_fraction",
        "eval_on_train", "eval_every", "loader", "prepare_steps", "model", "genotype")
GROUPS = {
    "mixing": ("mix", "k", "alpha", "p", "label_smoothing"),
    "optimisation": ("epochs", "batch_size", "keep_last_batch", "lr", "momentum", "nesterov", "weight_decay", "schedule", "milestones",
                     "gamma", "warmup_epochs", "auxiliary_weight", "drop_path", "grad_clip", "cutout"),
    "run": ("seed", "out", "resume", "device", "workers", "threads", "amp", "channels_last", "compile", "ckpt_every_steps",
            "limit_train_batches", "record_dynamics", "tensorboard", "plot", "quiet"),
}


def _model_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    d = default_values()
    p = sub.add_parser(
        name, help="train a classifier with any mixer (quick-start: no arguments)",
        description="Train a classifier with DMixup/DCutMix/... Flags override the recipe. With no arguments: "
                    f"{d['model']} + {d['mix']} (K={d['k']}) on the embedded digits data, offline on the CPU "
                    "(its measured time and error: docs/train.md, Quick-start).",
    )
    g = p.add_argument_group("what")
    g.add_argument("--recipe", help="YAML recipe (keys = TrainConfig fields), e.g. recipes/cifar100_pyramidnet110_dcutmix_paper.yaml")
    add_config_args(g, TrainConfig, only=WHAT)
    g.add_argument("--model-arg", action="append", type=_model_arg, metavar="KEY=VALUE",
                   help="extra model builder argument (YAML value), repeatable")
    for title, names in GROUPS.items():
        add_config_args(p.add_argument_group(title), TrainConfig, only=names)
    grouped = set(WHAT).union(*GROUPS.values())
    rest = [f.name for f in fields(TrainConfig) if f.metadata.get("cli", True) and f.name not in grouped]
    if rest:  # a field not yet filed under a group still gets its flag
        add_config_args(p.add_argument_group("more"), TrainConfig, only=rest)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < recipe (or, with --resume, OUT/config.yaml) < the flags given on the command line."""
    given = given_values(args, TrainConfig)
    base: dict[str, Any] = {}
    if args.recipe:
        base = recipe_values(args.recipe)
    elif given.get("resume") and given.get("out"):
        saved = Path(given["out"]) / "config.yaml"
        if not saved.is_file():  # nothing was started there: resuming would train the defaults instead
            raise FileNotFoundError(f"cannot resume {given['out']}: it holds no run (no config.yaml); start the run "
                                    f"with its original command (a --recipe or flags, without --resume)")
        base = upgrade_run_config(recipe_values(saved))
    if args.model_arg:
        given["model_kwargs"] = {**base.get("model_kwargs", {}), **dict(args.model_arg)}
    return TrainConfig.from_dict({**base, **given}, source="kmix train")


def run(args: argparse.Namespace) -> int:
    from kmix.train import fit

    config = config_from_args(args)
    summary = fit(config)
    if not config.quiet and int(os.environ.get("RANK", "0")) == 0:
        p = "train_" if summary["eval_split"] == "train" else ""
        keys = (f"{p}top1_err", f"{p}top5_err", f"best_{p}top1_err", "eval_split", "eval_images", "epochs", "wall_s",
                "img_per_s", "out")
        print(json.dumps({k: summary[k] for k in keys}))
    return 0
