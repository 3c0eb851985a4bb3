"""The command line as subcommands (issue 19): `fvopt bench run|report`, option groups shared across
commands, `fvopt --version`, and `fvopt bench SPEC` (no subcommand) refused in one line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import fvopt
from fvopt.cli import build_parser, main
from fvopt.cli.bench import BENCH_COMMANDS
from fvopt.config import setting

SPEC = """
[bench]
name = "cli"
size = 64
seeds = [0]
targets = ["channel:blocks.2:0"]
params = ["fft"]
budget = { passes = 4 }

[[strategies]]
name = "adam"
"""


def _options(parser) -> dict[str, object]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _commands(parser) -> dict:
    return parser._subparsers._group_actions[0].choices


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"fvopt {fvopt.__version__}"


def test_options_repeated_across_commands_come_from_one_definition():
    commands = _commands(build_parser())
    for option, names in {
        "--device": ("viz", "dream", "examples"),
        "--seed": ("viz", "dream"),
        "--weights": ("layers", "viz", "dream", "examples"),
        "--quiet": ("viz", "dream", "examples"),
    }.items():
        actions = {name: _options(commands[name])[option] for name in names}
        helps = {a.help for a in actions.values()}
        # viz leaves a flag not given out of its namespace (so --config's value stands): its default is the table's
        defaults = {
            repr(setting(a.dest).default if a.default == argparse.SUPPRESS else a.default) for a in actions.values()
        }
        assert len(helps) == 1 and len(defaults) == 1, (option, helps, defaults)
    bench = _commands(commands["bench"])
    assert set(bench) >= {"run", "report"} and set(BENCH_COMMANDS) >= {"run", "report"}
    for name, command in list(commands.items()) + [(f"bench {n}", c) for n, c in bench.items()]:
        assert "--debug" in _options(command), name


def test_bench_run_and_report_are_subcommands(tmp_path, capsys):
    spec, db = tmp_path / "spec.toml", tmp_path / "r.sqlite"
    spec.write_text(SPEC)
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "1 ran, 0 failed" in captured.out and "note:" not in captured.err
    assert main(["bench", "report", str(db), "--out", str(tmp_path / "rep"), "--no-html"]) == 0
    assert (tmp_path / "rep" / "summary.md").exists()


def test_a_spec_without_the_run_subcommand_is_refused_in_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    with pytest.raises(SystemExit) as done:
        main(["bench", str(spec)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "run", "SPEC", "--out", "rep"], "--out belongs to `fvopt bench report`"),
        (["bench", "report", "r.sqlite", "--db", "x.sqlite"], "--db belongs to a spec run, not to a report"),
        (["bench", "report"], "usage: fvopt bench report RESULTS.sqlite --out DIR"),
        (["bench", "run"], "the following arguments are required: spec"),
        (["bench", "rescor", "x"], "invalid choice: 'rescor'"),
    ],
)
def test_misplaced_options_and_missing_arguments_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    argv = [a.replace("SPEC", str(spec)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_the_installed_command_prints_the_version():
    out = subprocess.run([sys.executable, "-m", "fvopt.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"fvopt {fvopt.__version__}"
