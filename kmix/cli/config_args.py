"""Command-line options built from a config dataclass's fields, and the config's values back from the parsed flags.

Each option's help, choices and shown default come from the field (`kmix.options` lists the metadata keys), so
a default lives in one place. Options default to "not given" (argparse.SUPPRESS): `given_values` returns only the
flags on the command line (plus a field's cli_default), so a recipe or the dataclass fills the rest. A boolean
that defaults to on gets --FIELD / --no-FIELD, its help describing the field (what "on" does).
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from fractions import Fraction
from typing import Any, Callable, Iterable

from kmix.options import parse_number

# argparse type per annotation: every float through the one number parser (0.2, 1e-3, 1/3)
_SCALARS: dict[str, Callable[[str], Any]] = {"int": int, "float": parse_number, "str": str}


def field_default(f: Field, *, cli: bool = True) -> Any:
    """The field's default (its cli_default when `cli` and it has one); MISSING for a required field."""
    if cli and "cli_default" in f.metadata:
        return f.metadata["cli_default"]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def default_text(f: Field, sep: str = " ") -> str | None:
    """How the help shows the default: the field's default_text, else the value, a list joined by `sep` (None: show
    nothing)."""
    if "default_text" in f.metadata:
        return f.metadata["default_text"]
    value = field_default(f)
    if value is MISSING or value is None or isinstance(value, bool) or value == {}:
        return None
    if isinstance(value, (list, tuple)):
        return sep.join(_shown(v) for v in value) if value else None
    return _shown(value)


def _shown(value: Any) -> str:
    """A default as one would type it: a float that is a small fraction (2/9) as the fraction, else str."""
    if isinstance(value, float) and len(repr(value)) > 8:
        near = Fraction(value).limit_denominator(100)
        if float(near) == value:
            return f"{near.numerator}/{near.denominator}"
    return str(value)


def add_config_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                    only: Iterable[str] | None = None, skip: Iterable[str] = (), prefix: str = "",
                    flags: dict[str, str] | None = None, types: dict[str, Callable[[str], Any]] | None = None,
                    required: Iterable[str] = (),
                    choices: dict[str, Iterable[str]] | None = None) -> None:
    """Add one option per field of `cls` (those in `only`, minus `skip`), dest `prefix + field name`.

    flags renames options for this command (field -> flag); types gives a field this command's parser (the
    kmix.options parsers); required fields must be given; choices gives a field the names known only when the
    command is built (e.g. a registry's)."""
    by_name = {f.name: f for f in fields(cls)}
    names = list(only) if only is not None else [n for n in by_name if by_name[n].metadata.get("cli", True)]
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    required = set(required)
    for name in names:
        if name in skip:
            continue
        f = by_name[name]
        _add_option(parser, f, prefix + name, (flags or {}).get(name), (types or {}).get(name), name in required,
                    (choices or {}).get(name))


def _add_option(parser, f: Field, dest: str, flag: str | None, type_, required: bool, choices) -> None:
    meta = f.metadata
    flag = flag or meta.get("flag")
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
    help_text = meta.get("help", "")
    default = field_default(f)
    shown = default_text(f, "," if type_ else " ")  # a command's own parser takes a list as one comma-separated value
    switch = isinstance(default, bool) or meta.get("negatable")
    if switch and not (flag or "").startswith("--no-") and (default or meta.get("negatable")):
        shown = "on" if default else "off"  # --FIELD / --no-FIELD: say which one holds when neither is given
    if shown is not None and not required:
        help_text = f"{help_text} (default: {shown})" if help_text else f"(default: {shown})"
    kwargs["help"] = help_text.replace("%", "%%") if help_text else None
    if switch:
        if (flag or "").startswith("--no-"):  # an explicit off-switch
            kwargs["action"] = "store_false"
        elif default or meta.get("negatable"):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["action"] = "store_true"
    else:
        if "action" in meta:
            kwargs["action"] = meta["action"]
        scalar, many = _parse_type(f)
        kwargs["type"] = type_ or meta.get("type", scalar)
        if "nargs" in meta or (many and not type_):
            kwargs["nargs"] = meta.get("nargs", "+")
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        if choices is not None:
            kwargs["choices"] = tuple(choices)
    if meta.get("positional"):  # argparse names a positional by its dest, and requires it unless nargs says not
        del kwargs["dest"]
        parser.add_argument(dest, **kwargs)
        return
    if required:
        kwargs["required"] = True
    parser.add_argument(flag or "--" + f.name.replace("_", "-"), **kwargs)


def _parse_type(f: Field) -> tuple[Callable[[str], Any], bool]:
    """(argparse type, whether the field holds a list) from the annotation text, e.g. 'list[float]', 'int | None'."""
    text = str(f.type).replace(" ", "")
    first = text.split("|")[0]
    many = first.startswith(("list[", "tuple["))
    inner = first[first.index("[") + 1:].split(",")[0].rstrip("]") if many else first
    return _SCALARS.get(inner, str), many


def given_values(args: argparse.Namespace, cls: type, *, prefix: str = "") -> dict[str, Any]:
    """Field -> value for the options given on the command line, and cli_default for those that were not."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if hasattr(args, prefix + f.name):
            out[f.name] = getattr(args, prefix + f.name)
        elif "cli_default" in f.metadata:
            out[f.name] = f.metadata["cli_default"]
    return out
