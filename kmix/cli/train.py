"""`kmix train`: parse flags, merge them over a recipe (or a resumed run's config.yaml), call `fit`."""
from __future__ import annotations

import argparse
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from kmix.train.config import AMP_MODES, LOADERS, MIX_NAMES, SCHEDULES, TrainConfig, default_values, recipe_values


def _number(text: str) -> float:
    """A float, also written as a fraction such as 1/3."""
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError) as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err


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
                    f"{d['model']} + {d['mix']} (K={d['k']}) on the embedded digits data, about a minute on CPU.",
    )
    g = p.add_argument_group("what")
    g.add_argument("--recipe", help="YAML recipe (keys = TrainConfig fields), e.g. recipes/cifar100_pyramidnet110_dcutmix.yaml")
    g.add_argument("--data", help=f"digits, cifar10, cifar100 or an ImageFolder path (default {d['data']})")
    g.add_argument("--data-root", help="CIFAR: torchvision's pickle folder (where --download puts it), a JPEG tree "
                                       "train/<class>/ + test/<class>/, or its .tar.gz")
    g.add_argument("--download", action="store_true", default=None, help="download CIFAR if missing")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no random crop/flip (the dataset's standard train augmentation is on by default)")
    g.add_argument("--check-images", action="store_true", default=None,
                   help="decode every ImageFolder image before training; fail naming unreadable files")
    g.add_argument("--image-size", type=int, help="resize/crop size for ImageFolder data")
    g.add_argument("--subset", help="JSON index file (from `kmix subsample`) restricting the training set")
    g.add_argument("--val-fraction", type=_number,
                   help="hold out this seeded per-class fraction of the training set and evaluate on it (split 'val')")
    g.add_argument("--eval-on-train", action="store_true", default=None,
                   help="evaluate on the training images (summary keys then start with train_)")
    g.add_argument("--eval-every", type=int, help="evaluate every N epochs; the last epoch always (default 1)")
    g.add_argument("--loader", choices=LOADERS,
                   help="device: uint8 set on the training device, batched augmentation; workers: DataLoader; "
                        "auto (default): device when the set fits in half the free memory")
    g.add_argument("--model", help=f"registry name, tv:NAME or timm:NAME (default {d['model']})")
    g.add_argument("--model-arg", action="append", type=_model_arg, metavar="KEY=VALUE",
                   help="extra model builder argument (YAML value), repeatable")
    g.add_argument("--genotype", help="genotype JSON for --model darts (from `kmix search`)")
    g = p.add_argument_group("mixing")
    g.add_argument("--mix", choices=MIX_NAMES, help=f"mixer (default {d['mix']})")
    g.add_argument("--k", type=int, help=f"images mixed per sample, dmixup/dcutmix (default {d['k']})")
    g.add_argument("--alpha", type=_number, help=f"Dirichlet concentration, e.g. 0.2 or 1/3 (default {d['alpha']})")
    g.add_argument("--p", type=_number, help=f"probability of mixing a batch (default {d['p']})")
    g.add_argument("--label-smoothing", type=_number)
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=f"(default {d['epochs']})")
    g.add_argument("--batch-size", type=int, help=f"global batch, split over torchrun processes (default {d['batch_size']})")
    g.add_argument("--lr", type=_number, help=f"(default {d['lr']})")
    g.add_argument("--momentum", type=_number)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=_number)
    g.add_argument("--schedule", choices=SCHEDULES, help=f"(default {d['schedule']})")
    g.add_argument("--milestones", type=int, nargs="+", help="epochs where a step schedule multiplies lr by --gamma")
    g.add_argument("--gamma", type=_number)
    g.add_argument("--warmup-epochs", type=_number)
    g.add_argument("--auxiliary-weight", type=_number, help="weight of auxiliary logits (models returning (logits, aux))")
    g.add_argument("--drop-path", type=_number, help="final drop-path probability (models with drop_path_prob)")
    g.add_argument("--grad-clip", type=_number, help="clip the global gradient norm to this value (0 = off)")
    g.add_argument("--cutout", type=int, help="Cutout: zero a random square of this side per image (0 = off)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int)
    g.add_argument("--out", help="output folder (default runs/<data>-<model>-<mix>-<time>)")
    g.add_argument("--resume", action="store_true", default=None, help="continue from OUT/last.pt (settings from OUT/config.yaml)")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    g.add_argument("--workers", type=int, help="data-loading processes")
    g.add_argument("--threads", type=int, help="CPU threads for torch (1 is often fastest on a busy machine)")
    g.add_argument("--amp", choices=AMP_MODES, help="mixed precision (fp16 needs CUDA)")
    g.add_argument("--channels-last", action="store_true", default=None)
    g.add_argument("--ckpt-every-steps", type=int, help="also checkpoint every N steps (0 = per epoch only)")
    g.add_argument("--limit-train-batches", type=int, help="cap steps per epoch (smoke tests)")
    g.add_argument("--record-dynamics", action="store_true", default=None,
                   help="record each training image's loss, logit margin and correctness every epoch "
                        "(OUT/dynamics.pt, also in last.pt so resume continues them) for kmix score --method "
                        "forgetting|aum|dyn-unc --run OUT; a mixing run adds an eval-mode forward pass per step "
                        "on the unmixed batch")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)
    g.add_argument("--no-plot", dest="plot", action="store_false", default=None, help="no curves.png")
    g.add_argument("--quiet", action="store_true", default=None, help="no progress bars or per-epoch lines")
    return p


_NOT_CONFIG = {"recipe", "model_arg", "command", "debug", "_run"}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < recipe (or, with --resume, OUT/config.yaml) < the flags given on the command line."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG and v is not None}
    base: dict[str, Any] = {}
    if args.recipe:
        base = recipe_values(args.recipe)
    elif args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        base = recipe_values(Path(args.out) / "config.yaml")
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
