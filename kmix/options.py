"""Field helpers for the config dataclasses: the help text of options many commands share, kept once.

A config field's `metadata` is what `kmix.cli.config_args` reads to build its command-line option:
help (text), flag (option name when not --field-name), choices, type (argparse type), nargs, metavar,
default_text (shown instead of the default), cli_default (the command's default where it differs from the
library's, e.g. device auto vs cpu), cli (False: no option). Nothing here imports the rest of kmix.
"""
from __future__ import annotations

from dataclasses import MISSING, field
from typing import Any

DATA_HELP = "dataset spec: digits, cifar10, cifar100 or an ImageFolder path"
DATA_ROOT_HELP = ("dataset folder: CIFAR's pickle folder (where --download puts it), a JPEG tree "
                  "train/<class>/ + test/<class>/, or its .tar.gz")
DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N"


def option(default: Any = MISSING, help: str = "", **meta: Any) -> Any:
    """A dataclass field with this default (none: required) and command-line metadata (list/dict defaults are copied
    per instance)."""
    if default is MISSING:
        return field(metadata={"help": help, **meta})
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def data_option(default: Any = "digits", help: str = DATA_HELP, **meta: Any) -> Any:
    """The dataset spec field."""
    return option(default, help, **meta)


def data_root_option(**meta: Any) -> Any:
    """The dataset folder field: `data_root`, option --data-root, in every config."""
    return option(None, DATA_ROOT_HELP, **meta)


def device_option(default: str = "auto", **meta: Any) -> Any:
    """The device field."""
    return option(default, DEVICE_HELP, **meta)


def quiet_option(default: bool = False, help: str = "no progress bars or per-epoch lines", **meta: Any) -> Any:
    """The quiet field (the option --quiet, off unless given)."""
    return option(default, help, **({"cli_default": False} | meta))
