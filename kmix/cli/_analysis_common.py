"""Options of the analysis subcommands (landscape, attack, ood, eval), built from their config dataclasses."""
from __future__ import annotations

import argparse
from dataclasses import fields

from kmix.cli.config_args import add_config_args, given_values


def add_analysis_args(p: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = ()) -> None:
    """One option per field of `cls`: the command's own first, then the shared evaluation options."""
    from kmix.analysis.options import EvalOptions

    shared = [f.name for f in fields(EvalOptions)]
    own = [f.name for f in fields(cls) if f.name not in shared]
    add_config_args(p, cls, only=own + shared, required=required)


def build_config(cls: type, args: argparse.Namespace):
    """The config from the flags given (the dataclass fills the rest)."""
    return cls(**given_values(args, cls))
