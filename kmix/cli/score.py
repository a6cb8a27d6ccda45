"""`kmix score`: one score file per method for every training image (kmix-cv, el2n, grand, entropy, margin from
checkpoints; forgetting, aum, dyn-unc from a run recorded with kmix train --record-dynamics)."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

from kmix.cli.config_args import add_config_args, given_values
from kmix.options import parse_numbers

# ScoreConfig's fields with an option, in --help order (ScoreSpec's are the kmix-cv group)
OPTIONS = ("method", "checkpoint", "run_dir", "data", "data_root", "grand_params", "dyn_unc_window", "batch_size",
           "device", "out", "quiet")


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
    add_config_args(g, ScoreSpec, types={"alpha": parse_numbers})
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
    if len(spec.get("alpha", ())) == 1:  # one value for every non-anchor image
        spec["alpha"] = spec["alpha"] * (spec.get("k", ScoreSpec.k) - 1)
    summary = run_score(ScoreConfig(**values, spec=ScoreSpec(**spec)))
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0
