"""Field helpers for the config dataclasses: the help text of options many commands share, kept once.

A config field's `metadata` is what `kmix.cli.config_args` reads to build its command-line option:
help (text), flag (option name when not --field-name), choices, type (argparse type), nargs, metavar,
default_text (shown instead of the default), cli_default (the command's default where it differs from the
library's, e.g. device auto vs cpu), cli (False: no option), positional (an argument, not an --option).
The value parsers below are the only ones a command uses for numbers (so `1/3` works for every option).
Nothing here imports the rest of kmix.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, field
from fractions import Fraction
from typing import Any

import yaml


class BadValue(ValueError, argparse.ArgumentTypeError):
    """A command-line value that does not parse: argparse reports it as `argument --x: MESSAGE`, and
    `kmix`'s error handler, as a ValueError, prints it in one line."""


def parse_number(text: str) -> float:
    """A float written as a decimal (0.2, 1e-3) or a fraction (1/3): the one number parser of every command."""
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise BadValue(f"not a number: {text!r} (e.g. 0.2, 1e-3 or 1/3)") from None


def parse_numbers(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, each as `parse_number` reads it: '0.2,1/3' -> (0.2, 0.333...)."""
    parts = [t for t in text.split(",") if t.strip()]
    if not parts:
        raise BadValue(f"expected comma-separated numbers, got {text!r}")
    return tuple(parse_number(t) for t in parts)


def parse_number_or_numbers(text: str) -> float | tuple[float, ...]:
    """'0.2' -> 0.2; '0.2,1/3' -> (0.2, 0.333...): one value, or one per item."""
    values = parse_numbers(text)
    return values[0] if len(values) == 1 else values


def parse_ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers: '0,1,2' -> (0, 1, 2)."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BadValue(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise BadValue(f"expected comma-separated integers, got {text!r}")
    return values


_NUMERIC = re.compile(r"[+-]?[\d.]+(e[+-]?\d+)?(/[+-]?\d+)?", re.IGNORECASE)  # 1e-3, 1/3 (YAML keeps them as text)


def parse_value(text: str) -> Any:
    """A config value as YAML reads it (3, true, [50, 75], a path), numbers as `parse_number` reads them
    (1/3 and 1e-3 are floats, where plain YAML would keep them as text)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BadValue(f"cannot read {text!r}: {err}") from None
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        try:
            return parse_number(value)
        except BadValue:
            return value
    if isinstance(value, list):
        return [parse_value(v) if isinstance(v, str) else v for v in value]
    return value


def parse_key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE -> (key with '-' as '_', parse_value(VALUE))."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise BadValue(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), parse_value(value)


def parse_key_values(text: str) -> tuple[str, list[Any]]:
    """KEY=V1,V2,... -> (key, [values]), split on top-level commas: k=3,5 or milestones=[5,8],[10,15]."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise BadValue(f"expected KEY=V1,V2,..., got {text!r}")
    try:
        values = yaml.safe_load(f"[{value}]")
    except yaml.YAMLError as err:
        raise BadValue(f"cannot read the values of {text!r}: {err}") from None
    if not values:
        raise BadValue(f"{key.strip()} has no values")
    return key.strip().replace("-", "_"), [parse_value(v) if isinstance(v, str) else v for v in values]


class KeyValueAction(argparse.Action):
    """A repeatable KEY=VALUE option collected into one dict; a key given twice is an error."""

    def __call__(self, parser, namespace, values, option_string=None):
        key, value = values
        found = dict(getattr(namespace, self.dest, None) or {})
        if key in found:
            raise argparse.ArgumentError(self, f"{key} given twice")
        found[key] = value
        setattr(namespace, self.dest, found)

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
