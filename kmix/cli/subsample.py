"""`kmix subsample`: keep a fraction T of each class by a score column (top/bottom/interval/CCS), at random, or
by a k-center coreset; write subset.json."""
from __future__ import annotations

import argparse
import json


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.methods import column_orders
    from kmix.select.subsample import BASELINES, CCS_BINS, ORDERS, SAMPLINGS

    orders = column_orders()
    firsts = {o: ", ".join(c for c, v in orders.items() if v == o) for o in ORDERS}

    p = sub.add_parser(name, help="choose a per-class training subset from scores (or a baseline)",
                       description="Per class keep n_c = max(1, floor(T*N_c + 0.5)) images, chosen by a column of "
                                   "a kmix score file (any method: cv, mean, std, el2n, grand, entropy, margin, "
                                   "forgetting, aum, dyn-unc, ...) "
                                   "or mc-dropout entropy, ranked and sampled top, bottom, evenly spaced or by "
                                   "coverage-centric strata (CCS); or random, or a k-center coreset of penultimate "
                                   "features. Writes {\"indices\": [...], ...} for kmix train --subset.")
    p.add_argument("--scores", default=None, help="scores file from kmix score (needed to rank by one of its columns)")
    p.add_argument("--ratio", type=float, required=True, help="fraction T in (0, 1] kept per class")
    p.add_argument("--by", default="cv",
                   help=f"a score column of --scores (kmix-cv: cv, mean, std; el2n; grand; entropy; margin; "
                        f"forgetting; aum; dyn-unc; any other numeric column) or a method without scores: "
                        f"{', '.join(BASELINES)} (default: cv)")
    p.add_argument("--order", default=None, choices=ORDERS,
                   help="high: largest scores first, low: smallest first (default: the column's own hard/important "
                        f"end from the scores file: high for {firsts['high']} and mc-dropout, low for "
                        f"{firsts['low']})")
    p.add_argument("--sampling", default="top", choices=SAMPLINGS,
                   help="top: first n_c ranks; bottom: last n_c ranks; interval: evenly spaced ranks; ccs: drop the "
                        "first (hardest) beta fraction, cut the rest's score range into equal-width strata and "
                        "fill n_c stratum by stratum, emptiest first, at random inside each (Zheng et al., ICLR "
                        "2023) (default: top)")
    p.add_argument("--ccs-beta", type=float, default=None,
                   help="ccs: fraction of each class cut from the hard end, in [0, 1) (default: 0.3 at T <= 0.1, "
                        "the CCS authors' CIFAR-10 command for 10%% kept; 0 at T >= 0.5; linear in between, our "
                        "choice)")
    p.add_argument("--ccs-bins", type=int, default=CCS_BINS,
                   help=f"ccs: strata per class (default: {CCS_BINS}, as in the CCS code)")
    p.add_argument("--seed", type=int, default=0, help="seed for random, mc-dropout and ccs")
    p.add_argument("--checkpoint", default=None, help="model for mc-dropout / k-center")
    p.add_argument("--data", default=None, help="dataset (needed for mc-dropout / k-center; checked against "
                                                "--scores when both are given)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--mc-passes", type=int, default=10, help="stochastic passes for mc-dropout (default: 10)")
    p.add_argument("--mc-p", type=float, default=0.5,
                   help="dropout rate added before the classifier when the model has no dropout (default: 0.5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", default="subset.json")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.subsample import SubsampleConfig, run_subsample

    record = run_subsample(SubsampleConfig(
        ratio=args.ratio, out=args.out, by=args.by, order=args.order, sampling=args.sampling, seed=args.seed,
        scores=args.scores, checkpoint=args.checkpoint, data=args.data, data_root=args.data_root,
        mc_passes=args.mc_passes, mc_p=args.mc_p, ccs_beta=args.ccs_beta, ccs_bins=args.ccs_bins,
        batch_size=args.batch_size, device=args.device, quiet=args.quiet))
    summary = {k: v for k, v in record.items() if k != "indices"}
    print(json.dumps({"out": args.out, **summary}))
    return 0
