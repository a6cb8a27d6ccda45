"""`kmix table`: read run folders, write table.md / table.csv / curves.png (mean +- std over seeds)."""
from __future__ import annotations

import argparse

from kmix.cli.config_args import add_config_args, given_values


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    from kmix.sweep import TableConfig

    p = sub.add_parser(
        name, help="pool run folders by everything but the seed: mean +- std table (md, csv) and curves",
        description="Read config.yaml, summary.json and metrics.jsonl of each run folder (or of every run folder "
                    "below a given folder), group runs that differ only in the seed, and write table.md, "
                    "table.csv and curves.png. Unfinished runs are listed, not counted.")
    add_config_args(p, TableConfig)
    return p


def run(args: argparse.Namespace) -> int:
    from kmix.sweep import TableConfig, write_table

    config = TableConfig(**given_values(args, TableConfig))
    write_table(config.runs, config.folder, plot=config.plot)
    print((config.folder / "table.md").read_text(), end="")
    return 0
