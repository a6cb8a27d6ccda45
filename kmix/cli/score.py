"""`kmix score`: one score file per method for every training image (kmix-cv, el2n, grand, entropy, margin from
checkpoints; forgetting, aum, dyn-unc from a run recorded with kmix train --record-dynamics)."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

from kmix.cli.config_args import add_config_args, given_values

# ScoreConfig's fields with an option, in --help order (ScoreSpec's are the kmix-cv group)
OPTIONS = ("method", "checkpoint", "run_dir", "data", "data_root", "grand_params", "dyn_unc_window", "batch_size",
           "device", "out", "quiet")


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    """'0.2,0.3' -> (0.2, 0.3), with an error naming the option on bad input."""
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty")
    return values


# the score command's --alpha when not given: 0.2222 (rounded 2/9), as it has always been; ScoreSpec's own default
# (prune-curve, the library) is exactly 2/9. Unifying them changes kmix score's outputs in the last digits.
CLI_ALPHA = "0.2222,0.2222"


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.methods import SCORE_METHODS, score_method_names
    from kmix.select.score import ScoreConfig, ScoreSpec

    names = score_method_names()
    methods_help = "; ".join(f"{m}: {SCORE_METHODS[m].summary} [{SCORE_METHODS[m].reference}]" for m in names)
    p = sub.add_parser(name, help="score every training image (kmix-cv mixing uncertainty, EL2N, GraNd, entropy, "
                                  "margin, forgetting, AUM, Dyn-Unc)",
                       description="Write one row per training image: index, label and the method's score "
                                   "column(s), in one file format for every method, so that kmix subsample --by "
                                   "<column> takes any of them. kmix-cv (default): for every training image as "
                                   "anchor, M DCutMix composites with the anchor's proportion fixed (outer region, "
                                   "slot 0) and the other K-1 drawn from Dirichlet(alpha), partners from the whole "
                                   "dataset; the M losses and their mean, std (ddof=0) and cv = std/mean. "
                                   "Resumable; shards under torchrun. el2n/grand/entropy/margin score the model's "
                                   "prediction on the clean image, averaged over the checkpoints given; "
                                   "forgetting/aum/dyn-unc read the per-epoch records of a training run "
                                   "(--run, trained with kmix train --record-dynamics). Methods: " + methods_help)
    add_config_args(p, ScoreConfig, only=OPTIONS, choices={"method": names})
    g = p.add_argument_group("kmix-cv options (refused with other methods)")
    add_config_args(g, ScoreSpec, skip=("alpha",))
    g.add_argument("--alpha", default=argparse.SUPPRESS,
                   help=f"{ScoreSpec.__dataclass_fields__['alpha'].metadata['help']} (default: {CLI_ALPHA})")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.score import ScoreConfig, ScoreSpec, run_score

    values = given_values(args, ScoreConfig)
    method = values.get("method", ScoreConfig.method)
    given = [f.name for f in fields(ScoreSpec) if hasattr(args, f.name)]
    if method != "kmix-cv" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} appl{'ies' if len(given) == 1 else 'y'} to --method kmix-cv only, not {method}")
    if method != "grand" and values.get("grand_params", ScoreConfig.grand_params) != ScoreConfig.grand_params:
        raise ValueError(f"--grand-params applies to --method grand only, not {method}")
    if method != "dyn-unc" and "dyn_unc_window" in values:
        raise ValueError(f"--window applies to --method dyn-unc only, not {method}")
    spec = given_values(args, ScoreSpec)
    alpha = parse_floats(spec.pop("alpha", CLI_ALPHA), "--alpha")
    if len(alpha) == 1:
        alpha = alpha * (spec.get("k", ScoreSpec.k) - 1)
    summary = run_score(ScoreConfig(**values, spec=ScoreSpec(**spec, alpha=alpha)))
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0
