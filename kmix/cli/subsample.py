"""`kmix subsample`: keep a fraction T of each class by a score column (top/bottom/interval/CCS), at random, or
by a k-center coreset; write subset.json."""
from __future__ import annotations

import argparse
import json

from kmix.cli.config_args import add_config_args, given_values

# SubsampleConfig's fields in --help order
OPTIONS = ("scores", "ratio", "by", "order", "sampling", "ccs_beta", "ccs_bins", "seed", "checkpoint", "data", "data_root",
           "mc_passes", "mc_p", "batch_size", "device", "out", "quiet")


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.subsample import SubsampleConfig

    p = sub.add_parser(name, help="choose a per-class training subset from scores (or a baseline)",
                       description="Per class keep n_c = max(1, floor(T*N_c + 0.5)) images, chosen by a column of "
                                   "a kmix score file (any method: cv, mean, std, el2n, grand, entropy, margin, "
                                   "forgetting, aum, dyn-unc, ...) "
                                   "or mc-dropout entropy, ranked and sampled top, bottom, evenly spaced or by "
                                   "coverage-centric strata (CCS); or random, or a k-center coreset of penultimate "
                                   "features. Writes {\"indices\": [...], ...} for kmix train --subset.")
    add_config_args(p, SubsampleConfig, only=OPTIONS, required=("ratio",))
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.subsample import SubsampleConfig, run_subsample

    config = SubsampleConfig(**given_values(args, SubsampleConfig))
    record = run_subsample(config)
    summary = {k: v for k, v in record.items() if k != "indices"}
    print(json.dumps({"out": config.out, **summary}))
    return 0
