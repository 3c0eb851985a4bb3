"""Errors narrowed to what they mean, with the cause kept (issue 19): `--debug` / FVOPT_DEBUG=1 print
the traceback behind a one-line error; loaders chain the exception they turned into one line; only a
shape mismatch (not an out-of-memory error, not a bug) makes a network read as fixed-size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.models.loading import read_state_dict
from fvopt.models.wrapper import FeatureModel


@pytest.fixture
def junk(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    return path


def test_a_one_line_error_stays_one_line_without_debug(junk, capsys, monkeypatch):
    monkeypatch.delenv("FVOPT_DEBUG", raising=False)
    assert main(["layers", "torchvision:resnet18", "--weights", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fvopt: error: weight file") and "Traceback" not in err


@pytest.mark.parametrize("how", ["after", "before", "env"])
def test_debug_prints_the_traceback_and_the_cause_behind_the_line(junk, capsys, monkeypatch, how):
    monkeypatch.delenv("FVOPT_DEBUG", raising=False)
    argv = ["layers", "torchvision:resnet18", "--weights", str(junk)]
    if how == "after":
        argv.append("--debug")
    elif how == "before":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("FVOPT_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fvopt: error: weight file")  # the one line comes first, as without --debug
    assert "Traceback (most recent call last)" in err and "read_state_dict" in err
    # the cause torch.load raised is shown, then the FvoptError made from it
    assert "The above exception was the direct cause of the following exception" in err
    assert err.rstrip().splitlines()[-1].startswith("fvopt.errors.FvoptError: weight file")


def test_debug_shows_a_cause_hidden_with_from_none(capsys):
    from fvopt.cli.common import _print_traceback

    try:
        try:
            {}["missing"]
        except KeyError:
            raise FvoptError("one line") from None
    except FvoptError as err:
        _print_traceback(err)
    err_text = capsys.readouterr().err
    assert "KeyError: 'missing'" in err_text and "FvoptError: one line" in err_text


def test_every_command_takes_debug():
    from fvopt.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        assert any("--debug" in action.option_strings for action in command._actions), name


def test_a_loader_keeps_the_exception_it_turned_into_one_line(junk):
    with pytest.raises(FvoptError, match="is not a readable torch checkpoint") as caught:
        read_state_dict(junk, "resnet18")
    assert caught.value.__cause__ is not None and not isinstance(caught.value.__cause__, FvoptError)


class Flatten224(nn.Module):
    """Runs only at 32x32 (a flatten before a linear layer): really fixed-size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 32 * 32, 4)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class RaisesAtAnySize(nn.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.error = error

    def forward(self, x):
        raise self.error


def _wrap(net: nn.Module) -> FeatureModel:
    return FeatureModel(net, "test-net", input_size=32, min_size=8, fixed_size=None)


def test_a_shape_mismatch_reads_as_fixed_size_and_a_convolutional_network_does_not():
    assert _wrap(Flatten224()).fixed_size is True
    assert _wrap(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())).fixed_size is False


def test_out_of_memory_or_a_bug_is_never_read_as_fixed_size():
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    with pytest.raises(oom):
        _wrap(RaisesAtAnySize(oom("CUDA out of memory. Tried to allocate 2.00 GiB")))
    with pytest.raises(AttributeError):  # a bug in the network's code goes up as it is
        _wrap(RaisesAtAnySize(AttributeError("'NoneType' object has no attribute 'shape'")))
    # an error at every size, its own included, is not about size: one line, cause kept
    with pytest.raises(FvoptError, match="fails on a blank image of its own input size 32x32") as caught:
        _wrap(RaisesAtAnySize(RuntimeError("expected scalar type Half but found Float")))
    assert isinstance(caught.value.__cause__, RuntimeError)
