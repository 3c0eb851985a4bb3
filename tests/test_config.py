"""The declared configuration (fvopt.config) is the one description of a run: every setting it names is a flag of
each command it lists, a parameter of `fvopt.visualize`, a spec key and a trace key, with the same default and
the same refusal of a bad value in each place; a trace runs again to the same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import textwrap

import pytest

import fvopt
from fvopt.bench.spec import BENCH_KEYS, BUDGET_KEYS, INPUT_KEYS, parse_spec
from fvopt.cli import main
from fvopt.config import RunConfig, table
from fvopt.errors import FvoptError
from fvopt.testing import TinyNet

ROWS = table()
SIGNATURE = inspect.signature(fvopt.visualize).parameters
BAD_CANDIDATES = ["abc", "-1", "0", "nan", "1.5", ""]


def _help(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return " ".join(out.getvalue().split())


HELP = {}


def help_of(command: str) -> str:
    if command not in HELP:
        HELP[command] = _help(command)
    return HELP[command]


def bad_value(row):
    """The first candidate the setting's own check refuses (None: it accepts every candidate)."""
    for candidate in BAD_CANDIDATES:
        try:
            row.checked(candidate)
        except FvoptError:
            return candidate
    return None


def ids(row) -> str:
    return row.name


def test_the_table_has_the_run_and_every_column():
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)), "a setting declared twice"
    for row in ROWS:
        data = row.row()
        for column in ("name", "type", "default", "help", "commands", "cli", "python", "spec", "trace"):
            assert column in data
        assert row.help and row.help[0].islower() or row.help[0].isupper()
        json.dumps(data)  # data, for tools and the documentation


@pytest.mark.parametrize("row", [r for r in ROWS if r.cli], ids=ids)
def test_each_flag_is_in_the_help_of_every_command_that_takes_it(row):
    for command in row.commands:
        assert f"{row.cli} " in help_of(command) + " ", f"{row.cli} missing from fvopt {command} --help"


@pytest.mark.parametrize("row", [r for r in ROWS if r.python], ids=ids)
def test_each_python_setting_is_a_parameter_of_visualize_with_the_same_default(row):
    assert row.python in SIGNATURE, f"visualize has no parameter {row.python}"
    assert SIGNATURE[row.python].default == row.default_for("viz")


def test_visualize_and_atlas_list_their_parameters():
    for function in (fvopt.visualize, fvopt.atlas):
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
        assert function.__doc__ and len(inspect.signature(function).parameters) > 10


@pytest.mark.parametrize("row", [r for r in ROWS if r.spec and not r.spec.startswith("strategies")], ids=ids)
def test_each_spec_key_is_read_by_the_spec(row):
    head, _, tail = row.spec.partition(".")
    assert head in BENCH_KEYS
    if head == "input":
        assert tail in INPUT_KEYS
    if head == "budget":
        assert tail in BUDGET_KEYS


def _spec(**bench) -> dict:
    return {"bench": {"targets": ["class:1"], "budget": {"steps": 2}, **bench}, "strategies": [{"name": "adam"}]}


@pytest.mark.parametrize("row", [r for r in ROWS if r.check is not None and bad_value(r) is not None], ids=ids)
def test_one_bad_value_is_refused_alike_everywhere(row, capsys):
    bad = bad_value(row)
    with pytest.raises(FvoptError) as own:
        row.checked(bad)
    allowed = row.allowed
    assert allowed and allowed in str(own.value)
    if row.python:  # the Python API: refused before any model loads (the model name does not exist)
        with pytest.raises(FvoptError) as api:
            fvopt.visualize(**{"model": "no-such-model", row.python: bad})
        assert allowed in str(api.value), str(api.value)
        assert "\n" not in str(api.value)
    for command in row.commands if row.cli and not row.flag else ():
        argv = [command, row.cli, bad]
        if command in ("examples", "layers", "atlas"):
            argv = [command, "no-such-model", row.cli, bad]
        with pytest.raises(SystemExit) as done:
            main(argv)
        err = capsys.readouterr().err
        assert done.value.code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and allowed in err, (argv, err)
    spec_key = row.spec if row.spec and row.spec.count(".") <= 1 and not row.spec.startswith("strategies") else None
    if spec_key and spec_key not in ("models", "targets", "params", "seeds"):  # those are lists of values
        head, _, tail = spec_key.partition(".")
        value = {tail: bad} if tail else bad
        with pytest.raises(FvoptError) as spec:
            parse_spec(_spec(**{head: value}))
        assert allowed in str(spec.value) or "not the text" in str(spec.value), str(spec.value)


def test_the_trace_records_every_traced_setting(tmp_path):
    vis = fvopt.visualize(TinyNet(), "class:1", "pixel", steps=2, size=32, device="cpu", transforms="none")
    recorded = vis.trace["config"]
    for row in ROWS:
        if row.trace and row.trace.startswith("config."):
            assert row.trace.split(".")[1] in recorded, row.name
    assert recorded["replayable"] is False  # a Python module cannot be written to a file
    assert "TinyNet" in recorded["model"]


def test_unknown_settings_are_refused_with_the_closest_name():
    with pytest.raises(FvoptError, match="'sede' is not a setting. Did you mean: seed"):
        RunConfig.from_flat({"sede": 1})


def _factory(tmp_path) -> str:
    path = tmp_path / "tinyfactory.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from fvopt.testing import TinyNet

            def build():
                torch.manual_seed(0)
                return TinyNet()
            """
        )
    )
    return f"{path}:build"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_trace_runs_again_to_a_byte_identical_png(tmp_path, capsys):
    model = _factory(tmp_path)
    first, trace = tmp_path / "a.png", tmp_path / "run.json"
    argv = ["viz", "--model", model, "--target", "class:3", "--param", "fft", "--size", "32", "--steps", "3"]
    assert main([*argv, "--device", "cpu", "--seed", "5", "--out", str(first), "--trace", str(trace), "--quiet"]) == 0
    again = tmp_path / "b.png"
    assert main(["viz", "--config", str(trace), "--out", str(again), "--quiet"]) == 0
    assert _digest(first) == _digest(again)
    recorded = json.loads(trace.read_text())["config"]
    assert recorded["seed"] == 5 and recorded["steps"] == 3 and recorded["size"] == 32
    # a flag given overrides the file's value: another seed, another image
    other = tmp_path / "c.png"
    assert main(["viz", "--config", str(trace), "--seed", "6", "--out", str(other), "--quiet"]) == 0
    assert _digest(other) != _digest(first)
    assert json.loads((tmp_path / "run.json").read_text())["config"]["seed"] == 5  # the old trace is untouched


def test_a_toml_config_with_sections_runs_and_a_bad_one_is_refused_before_work(tmp_path, capsys):
    model = _factory(tmp_path)
    good = tmp_path / "run.toml"
    good.write_text(f'model = "{model}"\ntarget = "class:2"\n[budget]\nsteps = 2\n[view]\nsize = 32\n')
    assert main(["viz", "--config", str(good), "--device", "cpu", "--out", str(tmp_path / "t.png"), "--quiet"]) == 0
    assert (tmp_path / "t.png").exists()
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text(f'model = "{model}"\n[budget]\nstesp = 2\n')
    assert main(["viz", "--config", str(bad), "--out", str(tmp_path / "u.png")]) == 2
    err = capsys.readouterr().err
    assert "'stesp' is not a setting. Did you mean: steps" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "u.png").exists()


def test_fvopt_options_prints_the_table_as_json_and_text(capsys):
    assert main(["options", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lr"]["cli"] == "--lr" and by_name["lr"]["python"] == "lr" and by_name["lr"]["trace"] == "config.lr"
    assert by_name["steps"]["spec"] == "budget.steps" and "atlas" in by_name["steps"]["commands"]
    assert by_name["out"]["python"] is None
    assert main(["options"]) == 0
    text = capsys.readouterr().out
    assert "--render-size" in text and f"{len(rows)} settings" in text
    with pytest.raises(SystemExit) as done:
        main(["options", "--format", "yaml"])
    assert done.value.code == 2


@pytest.mark.parametrize("row", [r for r in ROWS if "atlas" in r.commands and r.python], ids=ids)
def test_each_atlas_setting_is_a_parameter_of_atlas_with_the_atlas_default(row):
    parameters = inspect.signature(fvopt.atlas).parameters
    assert row.python in parameters, f"fvopt.atlas has no parameter {row.python}"
    assert parameters[row.python].default == row.default_for("atlas")


def test_atlas_takes_a_run_configuration_for_the_settings_it_shares():
    """The atlas reads the settings it shares with a run off a configuration; its own arguments win."""
    from fvopt.atlases.api import _with_config

    config = RunConfig.from_flat({"model": "lite0", "size": 64, "passes": 30, "seed": 3, "transforms": "none"})
    defaults = {name: p.default for name, p in inspect.signature(fvopt.atlas).parameters.items()}
    arguments = _with_config(config, {**defaults, "model": None, "layers": "blocks.0", "seed": 7, "config": config})
    assert (arguments["model"], arguments["size"], arguments["passes"], arguments["seed"]) == ("lite0", 64, 30, 7)
    assert arguments["transforms"] == "none" and arguments["param"] == "fft" and arguments["layers"] == "blocks.0"
    assert "config" not in arguments
    with pytest.raises(FvoptError, match="config must be a RunConfig"):
        fvopt.atlas("lite0", config=42)


def test_a_toml_config_may_use_model_and_target_as_sections(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nmodel = "lite0"\nweights = "random"\n[target]\ntarget = "class:3"\n[budget]\nsteps = 2\n')
    from fvopt.config.run import read_config_file

    values = read_config_file(path)
    assert values == {"model": "lite0", "weights": "random", "target": "class:3", "steps": 2}
    assert RunConfig.from_flat(values).model.weights == "random"
