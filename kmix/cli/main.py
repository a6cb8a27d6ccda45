"""`kmix` command-line entry point: one thin module per subcommand, each with `add_parser` and `run`."""
from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
from pathlib import Path

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
    """The `kmix` parser; `parser.commands` maps each subcommand name to its own parser (for its errors)."""
    parser = argparse.ArgumentParser(
        prog="kmix",
        description="K-image mixing augmentation: mix, train, score, subsample, search, analyse.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.commands = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"kmix.cli.{module_name}")
        except ModuleNotFoundError as err:  # a subcommand still being written: leave it out
            if err.name != f"kmix.cli.{module_name}":
                raise
            continue
        p = module.add_parser(sub, name)
        p.set_defaults(_run=module.run)
        parser.commands[name] = p
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's own parser: 'kmix train: error: unrecognized arguments: ...'
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        result = args._run(args)
    except KeyboardInterrupt as err:
        how = continue_command(args.command, argv, err)
        print(f"kmix {args.command}: interrupted" + (f"; continue with: {how}" if how else ""), file=sys.stderr)
        return 130
    except Exception as err:
        message = error_message(err)
        if message is None or getattr(args, "debug", False):
            raise
        print(f"kmix {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


def error_message(err: BaseException) -> str | None:
    """The one-line message for an error the user can act on (bad input, an OS error naming its path, a
    busy run folder, a failed DataLoader worker); None for a bug, whose traceback is shown."""
    from kmix.io import WriteError
    from kmix.runs import RunFolderBusy

    if isinstance(err, (WriteError, RunFolderBusy)):
        return str(err)
    if isinstance(err, OSError) and err.strerror and not isinstance(err, FileNotFoundError):
        return err.strerror + (f" ({err.filename})" if err.filename else "")  # read-only, no permission, ...
    if isinstance(err, (ValueError, TypeError, FloatingPointError, OSError)):
        return _worker_message(str(err))
    if isinstance(err, RuntimeError) and str(err).startswith("DataLoader worker"):  # a worker died (killed, OOM)
        return str(err).strip().splitlines()[0]
    return None


def _worker_message(message: str) -> str:
    """A DataLoader worker's error arrives as 'Caught ValueError in DataLoader worker process 0.\nOriginal
    Traceback ...' (the whole worker traceback): keep its last line, the worker's own message."""
    if message.startswith("Caught ") and "\nOriginal Traceback" in message:
        last = message.strip().splitlines()[-1]
        return re.sub(r"^[\w.]+: ", "", last, count=1)
    return message


def continue_command(command: str, argv: list[str], err: BaseException) -> str | None:
    """The command line that continues an interrupted run, or None where there is nothing to continue."""
    if command == "train":
        out = getattr(err, "out", None)  # kmix.train.loop.TrainingInterrupted: the run folder, defaulted or not
        if out and (Path(out) / "config.yaml").is_file():
            return f"kmix train --resume --out {shlex.quote(str(out))}"
        # stopped before the run was saved (e.g. while decoding the data the first time): the same command again
        return "kmix " + shlex.join(argv) if out else None
    if command == "search":  # the same settings again (resume checks them), with --resume
        return "kmix " + shlex.join(argv if "--resume" in argv else [*argv, "--resume"])
    if command in ("prune-curve", "sweep", "score"):  # finished runs / saved chunks are reused, the rest resumes
        return "kmix " + shlex.join(argv)
    return None


if __name__ == "__main__":
    sys.exit(main())
