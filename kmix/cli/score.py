"""`kmix score`: mixing-based uncertainty (mean, std, cv of M anchored DCutMix losses) for every training image."""
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


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="score every training image by its loss under anchored K-image DCutMix",
                       description="For every training image as anchor, make M DCutMix composites with the "
                                   "anchor's proportion fixed (outer region, slot 0) and the other K-1 drawn from "
                                   "Dirichlet(alpha) over the rest, partners from the whole dataset; write the M "
                                   "losses and their mean, std (ddof=0) and cv = std/mean. Resumable; shards "
                                   "under torchrun.")
    p.add_argument("--checkpoint", required=True, help="kmix checkpoint of the scoring model")
    p.add_argument("--data", default="digits", help="dataset spec (default: digits)")
    p.add_argument("--data-root", default=None, help="dataset folder")
    p.add_argument("--draws", type=int, default=10, help="composites per anchor, M (default: 10)")
    p.add_argument("--k", type=int, default=3, help="images per composite (default: 3)")
    p.add_argument("--alpha", default="0.2222,0.2222",
                   help="Dirichlet alpha of the K-1 non-anchor images, comma-separated or one value "
                        "(default: 0.2222,0.2222)")
    p.add_argument("--anchor-phi", type=float, default=None,
                   help="the anchor's fixed proportion (default: mean(alpha)/(mean(alpha)+sum(alpha)), 1/3 for "
                        "the default alpha)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256, help="composites per forward pass")
    p.add_argument("--chunk-size", type=int, default=1024,
                   help="anchors per resumable chunk; scores depend on seed and chunk size, not batch size")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--out", default="scores.csv", help="output .csv (Parquet twin when pyarrow is installed) "
                                                       "or .parquet")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.select.score import ScoreConfig, ScoreSpec, run_score

    alpha = parse_floats(args.alpha, "--alpha")
    if len(alpha) == 1:
        alpha = alpha * (args.k - 1)
    spec = ScoreSpec(draws=args.draws, k=args.k, alpha=alpha, anchor_phi=args.anchor_phi, seed=args.seed,
                     chunk_size=args.chunk_size)
    summary = run_score(ScoreConfig(checkpoint=args.checkpoint, data=args.data, data_root=args.data_root,
                                    out=args.out, spec=spec, batch_size=args.batch_size, device=args.device,
                                    quiet=args.quiet))
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0
