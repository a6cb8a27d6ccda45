"""`kmix score`: one score file per method for every training image (kmix-cv, el2n, grand, entropy, margin from
checkpoints; forgetting, aum, dyn-unc from a run recorded with kmix train --record-dynamics)."""
from __future__ import annotations

import argparse
import json


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    """'0.2,0.3' -> (0.2, 0.3), with an error naming the option on bad input."""
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty")
    return values


# kmix-cv's own options: None means "not given", so other methods can refuse them instead of ignoring them
KMIX_CV_DEFAULTS = {"draws": 10, "k": 3, "alpha": "0.2222,0.2222", "anchor_phi": None, "chunk_size": 1024, "seed": 0}


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.select.methods import SCORE_METHODS, score_method_names
    from kmix.select.score import GRAND_PARAMS

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
                                   "(--run, trained with kmix train --record-dynamics).")
    p.add_argument("--method", default="kmix-cv", choices=names, help=f"{methods_help} (default: kmix-cv)")
    p.add_argument("--checkpoint", nargs="+", action="extend",
                   help="kmix checkpoint(s) of the scoring model, for kmix-cv (one) and el2n/grand/entropy/margin "
                        "(averaged over several, e.g. independent runs)")
    p.add_argument("--run", default=None,
                   help="for forgetting/aum/dyn-unc: a training-run folder recorded with kmix train "
                        "--record-dynamics (its dynamics.pt)")
    p.add_argument("--data", default="digits", help="dataset spec (default: digits)")
    p.add_argument("--data-root", default=None, help="dataset folder")
    p.add_argument("--grand-params", default="last", choices=GRAND_PARAMS,
                   help="grand only: gradient of the classifier layer only (last: exact closed form "
                        "||p - y|| * sqrt(||h||^2 + 1), a forward pass) or of all parameters (all: per-sample "
                        "gradients via torch.func, Paul et al.'s definition, slower) (default: last)")
    g = p.add_argument_group("kmix-cv options (refused with other methods)")
    g.add_argument("--draws", type=int, default=None, help="composites per anchor, M (default: 10)")
    g.add_argument("--k", type=int, default=None, help="images per composite (default: 3)")
    g.add_argument("--alpha", default=None,
                   help="Dirichlet alpha of the K-1 non-anchor images, comma-separated or one value "
                        "(default: 0.2222,0.2222)")
    g.add_argument("--anchor-phi", type=float, default=None,
                   help="the anchor's fixed proportion (default: mean(alpha)/(mean(alpha)+sum(alpha)), 1/3 for "
                        "the default alpha)")
    g.add_argument("--chunk-size", type=int, default=None,
                   help="anchors per resumable chunk; scores depend on seed and chunk size, not batch size "
                        "(default: 1024)")
    g.add_argument("--seed", type=int, default=None, help="seed of the composites (default: 0)")
    p.add_argument("--window", type=int, default=None,
                   help="dyn-unc only: epochs per sliding window, J (default: 10, as He et al.)")
    p.add_argument("--batch-size", type=int, default=256, help="images or composites per forward pass")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", default="scores.csv", help="output .csv (Parquet twin when pyarrow is installed) "
                                                       "or .parquet")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.dynamics_scores import DYN_UNC_WINDOW
    from kmix.select.score import ScoreConfig, ScoreSpec, run_score

    given = [k for k in KMIX_CV_DEFAULTS if getattr(args, k) is not None]
    if args.method != "kmix-cv" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} appl{'ies' if len(given) == 1 else 'y'} to --method kmix-cv only, "
                         f"not {args.method}")
    if args.method != "grand" and args.grand_params != "last":
        raise ValueError(f"--grand-params applies to --method grand only, not {args.method}")
    if args.method != "dyn-unc" and args.window is not None:
        raise ValueError(f"--window applies to --method dyn-unc only, not {args.method}")
    opts = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in KMIX_CV_DEFAULTS.items()}
    alpha = parse_floats(opts["alpha"], "--alpha")
    if len(alpha) == 1:
        alpha = alpha * (opts["k"] - 1)
    spec = ScoreSpec(draws=opts["draws"], k=opts["k"], alpha=alpha, anchor_phi=opts["anchor_phi"], seed=opts["seed"],
                     chunk_size=opts["chunk_size"])
    summary = run_score(ScoreConfig(checkpoint=args.checkpoint or (), data=args.data, data_root=args.data_root,
                                    out=args.out, method=args.method, run_dir=args.run, spec=spec,
                                    grand_params=args.grand_params,
                                    dyn_unc_window=args.window if args.window is not None else DYN_UNC_WINDOW,
                                    batch_size=args.batch_size, device=args.device, quiet=args.quiet))
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0
