"""Every command reads its options one way: numbers (fractions too) through one parser, a bad value as a one-line
error naming the option, default-on switches as --FIELD / --no-FIELD with a help that describes the field."""
from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from kmix.cli.main import COMMANDS, build_parser, main
from kmix.options import BadValue, parse_number, parse_numbers, parse_value


def _capture(monkeypatch, module, name: str) -> list:
    """Replace `module.name` (a command's runner) by one that records its config and returns a stand-in."""
    seen: list = []

    def fake(config, *args, **kwargs):
        seen.append(config)
        return {"rank": 1}  # kmix score prints nothing on rank != 0
    monkeypatch.setattr(module, name, fake)
    return seen


def test_one_number_parser_reads_decimals_exponents_and_fractions():
    assert parse_number("0.2") == 0.2 and parse_number("1e-3") == 0.001 and parse_number("1/3") == 1 / 3
    assert parse_numbers("0.2, 1/3") == (0.2, 1 / 3)
    assert parse_value("1/3") == 1 / 3 and parse_value("1e-3") == 0.001 and parse_value("[1/3, 2]") == [1 / 3, 2]
    assert parse_value("runs/a") == "runs/a" and parse_value("3") == 3 and parse_value("inf") == "inf"
    for bad in ("x", "1/0", "", "0.2.3"):
        with pytest.raises(BadValue):
            parse_number(bad)
    with pytest.raises(ValueError):  # a BadValue is a ValueError too: kmix's error handler prints it in one line
        parse_numbers(",")


def test_show_and_score_take_alpha_as_a_fraction(tmp_path, monkeypatch):
    import kmix.cli.show
    import kmix.select.score

    shown = _capture(monkeypatch, kmix.cli.show, "show_mix")
    assert main(["show", "--alpha", "1/3", "--out", str(tmp_path / "g.png")]) == 0
    assert shown[0].alpha == pytest.approx(0.3333333333333333) and shown[0].alpha == 1 / 3
    assert main(["show", "--mix", "dcutmix", "--alpha", "1/3,0.5,1e-1", "--out", str(tmp_path / "g.png")]) == 0
    assert shown[1].alpha == (1 / 3, 0.5, 0.1)

    scored = _capture(monkeypatch, kmix.select.score, "run_score")
    assert main(["score", "--checkpoint", "c.pt", "--alpha", "1/3", "--out", str(tmp_path / "s.csv")]) == 0
    assert scored[0].spec.alpha == (1 / 3, 1 / 3)  # one value for each of the K-1 = 2 non-anchor images
    assert main(["score", "--checkpoint", "c.pt", "--out", str(tmp_path / "s.csv")]) == 0
    assert scored[1].spec.alpha == (2 / 9, 2 / 9)  # the library's alpha, exactly
    assert "(default: 2/9,2/9)" in " ".join(build_parser().commands["score"].format_help().split())


def test_every_float_option_takes_a_fraction():
    parser = build_parser()
    for argv, dest, value in ((["train", "--alpha", "1/3", "--lr", "1/10"], "alpha", 1 / 3),
                              (["train", "--norm-mean", "1/2", "1/4"], "norm_mean", [0.5, 0.25]),
                              (["score", "--anchor-phi", "1/3"], "anchor_phi", 1 / 3),
                              (["prune-curve", "--ratios", "1/4,1/2"], "ratios", (0.25, 0.5)),
                              (["prune-curve", "--alpha", "1/3"], "alpha", 1 / 3),
                              (["attack", "--checkpoint", "c", "--out", "o", "--eps", "8/3"], "eps", [8 / 3]),
                              (["landscape", "--checkpoint", "c", "--out", "o", "--radius", "1/4"], "radius", 0.25),
                              (["subsample", "--ratio", "1/3"], "ratio", 1 / 3)):
        assert getattr(parser.parse_args(argv), dest) == value, argv


@pytest.mark.parametrize("argv, said", [
    (["show", "--alpha", "a"], "argument --alpha: not a number: 'a'"),
    (["score", "--alpha", "1/0"], "argument --alpha: not a number: '1/0'"),
    (["train", "--alpha", "x"], "argument --alpha: not a number: 'x'"),
    (["prune-curve", "--seeds", "0,a"], "argument --seeds: expected comma-separated integers, got '0,a'"),
    (["sweep", "--out", "s", "--vary", "k"], "argument --vary: expected KEY=V1,V2,..., got 'k'"),
])
def test_a_bad_value_is_one_line_naming_the_option(argv, said, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"kmix {argv[0]}: error: ") and said in last


def test_default_on_switches_read_forwards():
    """A switch that is on by default is --FIELD / --no-FIELD and its help says what "on" does (not "no X")."""
    parser = build_parser()
    seen = 0
    for name, sub in parser.commands.items():
        for action in sub._actions:
            if isinstance(action, argparse.BooleanOptionalAction):
                seen += 1
                assert action.help.split()[0].lower() not in ("no", "skip", "do", "don't"), (name, action.help)
                assert action.help.endswith(("(default: on)", "(default: off)")), (name, action.help)
            elif isinstance(action, argparse._StoreFalseAction):
                pytest.fail(f"kmix {name} {action.option_strings}: a default-on switch without --{action.dest}")
    assert seen >= 8
    args = parser.parse_args(["train", "--no-tensorboard", "--no-augment"])
    assert (args.tensorboard, args.augment) == (False, False)
    assert parser.parse_args(["table", "r", "--no-plot"]).plot is False
    assert parser.parse_args(["prune-curve", "--data", "digits", "--no-full"]).full is False


def test_sweep_and_table_options_are_their_configs_fields():
    from kmix.sweep import SweepConfig, TableConfig

    parser = build_parser()
    for command, cls, extra in (("sweep", SweepConfig, {"plan"}), ("table", TableConfig, set())):
        dests = {a.dest for a in parser.commands[command]._actions} - {"help"}
        assert dests == {f.name for f in fields(cls)} | extra, command
    assert set(COMMANDS) <= set(parser.commands)
