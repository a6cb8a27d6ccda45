"""`kmix table`: read run folders, write table.md / table.csv / curves.png (mean +- std over seeds)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="pool run folders by everything but the seed: mean +- std table (md, csv) and curves",
        description="Read config.yaml, summary.json and metrics.jsonl of each run folder (or of every run folder "
                    "below a given folder), group runs that differ only in the seed, and write table.md, "
                    "table.csv and curves.png. Unfinished runs are listed, not counted.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders or folders holding them (a sweep's OUT)")
    p.add_argument("--out", help="where to write (default: the RUN_DIR, when exactly one is given)")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="no curves.png")
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.sweep import write_table

    if args.out is None and len(args.runs) != 1:
        raise ValueError(f"--out is needed with {len(args.runs)} RUN_DIRs (where should table.md go?)")
    out = Path(args.out or args.runs[0])
    write_table(args.runs, out, plot=args.plot)
    print((out / "table.md").read_text(), end="")
    return 0
