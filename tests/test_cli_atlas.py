"""`fvopt atlas` on the command line: `atlas merge` is its own subcommand with its own --help, the atlas takes the
shared --seed/--device/--quiet groups, and --weights loads a local weight file into the network every cell runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fvopt.atlases import atlas, table
from fvopt.cli import main

FIXTURE_FILE = Path(__file__).parent / "fixtures" / "atlas_nan_net.py"
FIXTURE = f"{FIXTURE_FILE}:make"  # a 3->2 convolution; channel 1 is NaN by design
SMALL = dict(size=32, steps=3, max_batch=2, reference=None, progress=False)


def test_atlas_merge_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["atlas", "merge", "-h"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: fvopt atlas merge") and "--out OUT" in text and "SITE [SITE ...]" in text
    assert "--layers" not in text and "--optimizers" not in text  # the run's options are not merge's
    with pytest.raises(SystemExit):
        main(["atlas", "-h"])
    assert "fvopt atlas merge -h" in " ".join(capsys.readouterr().out.split())  # the run's help points to merge's


@pytest.mark.slow
def test_atlas_merge_joins_two_sites_from_the_command_line(tmp_path, capsys):
    parts = [tmp_path / "part1", tmp_path / "part2"]
    for k, part in enumerate(parts, 1):
        atlas(FIXTURE, "conv", "adam", units="0", seeds=str(k), out=part, **SMALL)
    merged = tmp_path / "merged"
    assert main(["atlas", "merge", str(parts[0]), str(parts[1]), "--out", str(merged), "--quiet"]) == 0
    assert f"merged 2 atlases into '{merged}': 2 cells done" in capsys.readouterr().out
    assert sorted(table(merged).seed) == [1, 2]


def test_atlas_merge_refuses_its_missing_arguments_in_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["atlas", "merge", "--out", "x"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fvopt atlas merge: error:") and "SITE" in err and len(err.splitlines()) == 1


def test_atlas_takes_the_shared_seed_type(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["atlas", FIXTURE, "--layers", "conv", "--seed", "-1", "--out", str(tmp_path / "site")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "--seed: '-1' is not allowed" in err and not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    "weights, said",
    [("missing.pt", "weight file '{dir}/missing.pt' does not exist"), ("random", "weights 'random' is not allowed")],
)
def test_atlas_refuses_a_weight_file_it_cannot_use_before_work(tmp_path, capsys, weights, said):
    out = tmp_path / "site"
    given = str(tmp_path / weights) if weights != "random" else weights
    cmd = ["atlas", "lite0", "--layers", "blocks.0", "--weights", given, "--out", str(out)]
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said.format(dir=tmp_path) in err and not out.exists()


@pytest.mark.slow
def test_atlas_runs_the_network_of_the_weight_file(tmp_path, capsys):
    """A weight file whose convolution is zero and whose bias is random: channel 0 then reads its bias on every
    image, so each cell's value is that bias exactly; the fixture's own weights give another value."""
    torch.manual_seed(7)
    state = {k: torch.randn_like(v) for k, v in _fixture_state().items()}
    state["conv.weight"] = torch.zeros_like(state["conv.weight"])
    weights = tmp_path / "w.pt"
    torch.save(state, weights)
    out = tmp_path / "site"
    cmd = ["atlas", FIXTURE, "--layers", "conv", "--units", "0-0", "--optimizers", "adam,cmaes", "--steps", "2"]
    cmd += ["--size", "32", "--reference", "none", "--quiet", "--weights", str(weights), "--out", str(out)]
    assert main(cmd) == 0
    frame = table(out)
    assert sorted(frame.optimizer) == ["adam", "cmaes"] and set(frame.status) == {"done"}
    assert frame.value.tolist() == pytest.approx([float(state["conv.bias"][0])] * 2, abs=1e-6)
    settings = json.loads((out / "atlas.json").read_text())["settings"]
    assert settings["weights"] == str(weights)
    own = atlas(FIXTURE, "conv", "adam", units="0-0", steps=2, size=32, reference=None, out=tmp_path / "own")
    assert abs(float(own.value.iloc[0]) - float(state["conv.bias"][0])) > 1e-3
    capsys.readouterr()
    assert main([*cmd[:-4], "--out", str(out)]) == 2  # the same site without the weight file: other settings
    assert "weights" in capsys.readouterr().err


def _fixture_state() -> dict[str, torch.Tensor]:
    from fvopt.models.user import load_user_model

    return load_user_model(FIXTURE).net.state_dict()
