"""`kmix` command-line entry point: one thin module per subcommand, each with `add_parser` and `run`."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module under kmix.cli (one place: the help text and dispatch read this)
COMMANDS: dict[str, str] = {
    "show": "show",
    "train": "train",
    "score": "score",
    "subsample": "subsample",
    "prune-curve": "prune_curve",
    "sweep": "sweep",
    "table": "table",
    "search": "search",
    "landscape": "landscape",
    "attack": "attack",
    "ood": "ood",
    "eval": "evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmix",
        description="K-image mixing augmentation: mix, train, score, subsample, search, analyse.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"kmix.cli.{module_name}")
        except ModuleNotFoundError as err:  # a subcommand still being written: leave it out
            if err.name != f"kmix.cli.{module_name}":
                raise
            continue
        p = module.add_parser(sub, name)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args._run(args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as err:
        if getattr(args, "debug", False):
            raise
        print(f"kmix {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kmix {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
