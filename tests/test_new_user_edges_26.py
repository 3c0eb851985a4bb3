"""What a new user still tripped on (issue 26): the run line's normalization, loading edge cases,
a stop during the final scoring, tracebacks turned into one line, and silent wrong answers refused."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.models import wrap
from fvopt.models.user import describe_normalization
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.params.color import check_basis_applies, estimate_basis

FAST = ["--steps", "2", "--size", "64", "--measures", "none", "--quiet"]

FACTORY = """
import torch
def make():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
"""


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _photo(tmp_path, name="photo.png", gray=False):
    import skimage.data

    image = Image.fromarray(skimage.data.chelsea()).resize((96, 64))
    path = tmp_path / name
    (image.convert("L") if gray else image).save(path)
    return path


def _huge_png(path, side=20000):
    """A PNG whose header claims side x side pixels (above PIL's decompression-bomb limit) in 100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


# --- the run line names the normalization that ran ---------------------------------------------------


@pytest.mark.slow
def test_the_run_line_names_the_normalization_of_a_named_model(tmp_path, capsys):
    assert main(["viz", "--model", "lite0", "--target", "class:1", "--out", str(tmp_path / "v.png"), *FAST]) == 0
    out, err = capsys.readouterr()
    assert "; normalization: imagenet" in out and "note:" not in err


def test_an_own_network_fed_without_normalization_says_so_and_how_to_set_it(tmp_path, capsys):
    (tmp_path / "mynet.py").write_text(FACTORY)
    model = f"{tmp_path / 'mynet.py'}:make"
    trace = tmp_path / "v.json"
    args = ["viz", "--model", model, "--target", "class:1", "--out", str(tmp_path / "v.png"), *FAST]
    assert main(args + ["--trace", str(trace)]) == 0
    out, err = capsys.readouterr()
    assert "; normalization: none" in out
    assert _one_line(err).startswith("note: your network is fed [0,1] images with no normalization")
    assert "--mean imagenet --std imagenet" in err
    t = json.loads(trace.read_text())
    assert t["normalization"] == "none" and "--mean imagenet" in t["normalization_note"]
    assert main(args + ["--mean", "imagenet", "--std", "imagenet"]) == 0
    out, err = capsys.readouterr()
    assert "; normalization: imagenet" in out and "note:" not in err


def test_normalization_is_described_by_name_or_by_its_values():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    assert describe_normalization(wrap(net)) == "none"
    assert describe_normalization(wrap(net, mean="imagenet", std="imagenet")) == "imagenet"
    assert describe_normalization(wrap(net, mean=0.5, std=0.25)) == "mean 0.5,0.5,0.5 std 0.25,0.25,0.25"
    assert describe_normalization(wrap(net, value_range=(0, 255))) == "none after mapping [0,1] to [0,255]"


def test_a_plain_module_in_python_gets_the_note_in_its_trace():
    from fvopt import visualize

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    vis = visualize(net, "channel:1:0", steps=1, size=32, measures="none")
    assert vis.trace["normalization"] == "none" and "mean='imagenet'" in vis.trace["normalization_note"]
    vis = visualize(net, "channel:1:0", steps=1, size=32, measures="none", mean="imagenet", std="imagenet")
    assert vis.trace["normalization"] == "imagenet" and vis.trace["normalization_note"] is None


# --- loading edge cases --------------------------------------------------------------------------


def test_weights_naming_a_directory_say_it_is_a_directory(tmp_path, capsys):
    assert main(["viz", "--weights", str(tmp_path), "--out", str(tmp_path / "v.png"), *FAST]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"weights '{tmp_path}' for lite0 is a directory, not a weight file" in line
    assert not (tmp_path / "v.png").exists()


def test_a_corrupt_exported_program_is_one_line_without_torchs_logged_traceback(tmp_path, capsys):
    import logging

    bad = tmp_path / "corrupt.pt2"
    bad.write_bytes(b"PK\x03\x04" + b"garbage" * 100)
    done = subprocess.run(
        [sys.executable, "-m", "fvopt.cli", "viz", "--model", str(bad), "--out", str(tmp_path / "v.png"), *FAST],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "is not a readable torch.export program" in _one_line(done.stderr)
    before = logging.getLogger("torch.export").disabled
    assert main(["viz", "--model", str(bad), "--out", str(tmp_path / "v.png"), *FAST]) == 2
    assert logging.getLogger("torch.export").disabled == before, "the logger is left as it was found"


@pytest.mark.parametrize("how", ["init", "invert", "decorrelate"])
def test_an_image_over_pils_pixel_limit_is_one_line_before_any_work(tmp_path, capsys, how):
    huge = _huge_png(tmp_path / "huge.png")
    flag = {
        "init": ["--init", str(huge), "--param", "pixel"],
        "invert": ["--target", f"invert:blocks.1@{huge}"],
        "decorrelate": ["--decorrelate", str(huge)],
    }[how]
    assert main(["viz", *flag, "--out", str(tmp_path / "v.png"), *FAST]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"cannot read image '{huge}'" in line and "exceeds limit" in line
    assert not (tmp_path / "v.png").exists()


def test_fvopt_cache_naming_a_file_is_one_line_before_the_run(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FVOPT_CACHE", str(blocker))
    out = tmp_path / "v.png"
    args = ["viz", "--reference", "builtin", "--steps", "2", "--size", "64", "--quiet", "--out", str(out)]
    assert main(args) == 2
    assert f"FVOPT_CACHE '{blocker}' is a file, not a folder" in _one_line(capsys.readouterr().err)
    assert not out.exists(), "refused before the run"
    monkeypatch.setenv("FVOPT_CACHE", str(blocker / "sub"))
    assert main(args) == 2
    assert f"lies inside '{blocker}', which is a file" in capsys.readouterr().err


# --- a stop during the final scoring keeps the finished run -------------------------------------------

# A real SIGTERM through fvopt's handler, sent when the final scoring starts (after the optimization).
_SIGTERM_WHILE_SCORING = """
import os, signal, sys
import fvopt.viz
original = fvopt.viz.score_images
def score_images(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
fvopt.viz.score_images = score_images
from fvopt.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_during_the_final_scoring_keeps_the_image_and_trace_and_says_scoring_was_stopped(tmp_path):
    script, out, trace = tmp_path / "run.py", tmp_path / "v.png", tmp_path / "v.json"
    script.write_text(_SIGTERM_WHILE_SCORING)
    done = subprocess.run(
        [sys.executable, str(script), "viz", "--out", str(out), "--trace", str(trace), *FAST],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 143, done.stderr
    line = _one_line(done.stderr)
    assert "while scoring the finished run (2 steps): kept its image" in line and "scoring was stopped" in line
    assert "nothing was written" not in line and "not scored" in done.stdout
    assert Image.open(out).size == (64, 64)
    t = json.loads(trace.read_text())
    assert t["stop_reason"] == "steps" and t["scoring_stopped"] == "terminated" and len(t["steps"]) == 2
    assert t["final"]["value"] is None and "while scoring the finished run" in t["final"]["note"]


# --- silent wrong answers refused ---------------------------------------------------------------------


def test_a_grayscale_photo_or_two_pixels_cannot_set_an_rgb_decorrelation(tmp_path):
    with pytest.raises(FvoptError, match="vary along only 1 color direction"):
        estimate_basis(_photo(tmp_path, "gray.png", gray=True), 3)  # read as RGB: R = G = B
    two = tmp_path / "two"
    two.mkdir()
    Image.new("RGB", (1, 1), (10, 200, 30)).save(two / "a.png")
    Image.new("RGB", (1, 1), (200, 20, 30)).save(two / "b.png")
    with pytest.raises(FvoptError, match=f"decorrelate source '{two}'.*only 1 color direction"):
        estimate_basis(two, 3)
    basis = estimate_basis(_photo(tmp_path), 3)  # a color photo: three directions
    assert torch.linalg.matrix_rank(basis.matrix) == 3


def test_a_grayscale_decorrelation_is_refused_on_the_command_line(tmp_path, capsys):
    gray = _photo(tmp_path, "gray.png", gray=True)
    assert main(["viz", "--decorrelate", str(gray), "--out", str(tmp_path / "v.png"), *FAST]) == 2
    assert "degenerate channel covariance" in _one_line(capsys.readouterr().err)


def test_a_decorrelation_a_parameterization_would_ignore_is_refused(tmp_path, capsys):
    basis = estimate_basis(_photo(tmp_path), 3)
    for spec, hint in [("pixel", "pixel:decorrelate=true"), ("pixel:k=8", "pixel:k=8,decorrelate=true")]:
        with pytest.raises(FvoptError, match=f"does not apply to param {spec}.*use --param {hint}"):
            check_basis_applies(make_param(spec, 32, color=basis), basis)
    check_basis_applies(make_param("pixel:decorrelate=true", 32, color=basis), basis)
    check_basis_applies(make_param("fft", 32, color=basis), basis)
    assert make_param("pixel", 32).color_source == "none"  # the trace names what ran: no decorrelation


@pytest.mark.slow
def test_pixel_with_a_decorrelation_is_refused_on_the_command_line_and_runs_when_it_decorrelates(tmp_path, capsys):
    photo = _photo(tmp_path)
    args = ["viz", "--decorrelate", str(photo), "--out", str(tmp_path / "v.png"), *FAST]
    assert main(args + ["--param", "pixel"]) == 2
    assert "use --param pixel:decorrelate=true" in _one_line(capsys.readouterr().err)
    trace = tmp_path / "v.json"
    assert main(args + ["--param", "pixel:decorrelate=true", "--trace", str(trace)]) == 0
    assert json.loads(trace.read_text())["decorrelation"] == f"estimated from {photo} (1 file)"


def test_a_caricature_power_that_leaves_float32s_range_is_refused(tmp_path):
    photo = _photo(tmp_path)
    for power in ("1e6", "11"):
        with pytest.raises(FvoptError, match=r"cosine power .* must be a number in \[0, 10\]"):
            parse_target(f"caricature:blocks.1:{power}@{photo}")
    assert "caricature:blocks.1:10@" in str(parse_target(f"caricature:blocks.1:10@{photo}"))


@pytest.mark.parametrize("power", [2, 10])
def test_caricature_values_stay_finite_and_nonzero_up_to_the_largest_power(lite0, tmp_path, power):
    from fvopt.evaluate import score_images
    from fvopt.objectives.image_targets import bind_photos

    objective = parse_target(f"caricature:blocks.1:{power}@{_photo(tmp_path)}")
    bind_photos(objective, lite0, 64)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    values = score_images(lite0, objective, images, draws=0)["value"]
    assert torch.isfinite(values).all() and (values.abs() > 0).all()
    assert np.isfinite(values.numpy()).all()
