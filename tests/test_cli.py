import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fvopt.cli import main
from fvopt.evaluate import top_classes


def test_viz_class_8_is_classified_as_hen(tmp_path, lite0, capsys):
    out, trace = tmp_path / "hen.png", tmp_path / "hen.json"
    assert (
        main(["viz", "--target", "class:8", "--steps", "40", "--out", str(out), "--trace", str(trace), "--quiet"]) == 0
    )
    image = torch.from_numpy(np.asarray(Image.open(out), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    assert image.shape == (1, 3, 224, 224)
    _, classes = top_classes(lite0, image, k=1)
    assert int(classes[0, 0]) == 8
    assert "top-1 8 hen" in capsys.readouterr().out
    t = json.loads(trace.read_text())
    assert {"model", "target", "optimizer", "param", "param_dim", "seed", "steps", "final"} <= set(t)
    assert (t["model"], t["target"], t["optimizer"], t["param"], t["seed"]) == ("lite0", "class:8", "adam", "fft", 0)
    assert len(t["steps"]) == 40
    assert set(t["steps"][0]) == {"step", "time_s", "forwards", "backwards", "value", "best"}
    assert t["steps"][-1]["value"] > t["steps"][0]["value"]
    assert {"value", "robust_value"} <= set(t["final"])


def test_many_channels_in_one_batched_run_make_a_labelled_grid(tmp_path):
    out, trace = tmp_path / "grid.png", tmp_path / "grid.json"
    code = main(
        [
            "viz",
            "--target",
            "channel:blocks.3:0-3",
            "--steps",
            "3",
            "--size",
            "64",
            "--out",
            str(out),
            "--trace",
            str(trace),
            "--quiet",
            "--snapshots",
            str(tmp_path / "snaps"),
            "--snapshot-every",
            "1",
        ]
    )
    assert code == 0
    t = json.loads(trace.read_text())
    assert t["batch"] == 4 and t["forwards"] == 12
    assert t["final"]["per_image"]["unit"] == [f"channel:blocks.3:{i}" for i in range(4)]  # as quality labels them
    width, height = Image.open(out).size
    assert width > 2 * 64 and height > 2 * 64
    assert len(list((tmp_path / "snaps").glob("*.png"))) == 3


def test_zero_order_cli_defaults_to_low_dimensional_fft(tmp_path):
    trace = tmp_path / "t.json"
    assert (
        main(
            [
                "viz",
                "--target",
                "channel:blocks.3:5",
                "--optimizer",
                "cmaes",
                "--popsize",
                "6",
                "--steps",
                "2",
                "--size",
                "64",
                "--out",
                str(tmp_path / "o.png"),
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    t = json.loads(trace.read_text())
    assert (t["param"], t["param_dim"], t["forwards"], t["backwards"]) == ("fft:k=8", 918, 12, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--target", "channel:block.4:1"], "Did you mean: blocks.4"),
        (["--target", "channel:blocks.4:500"], "has 112 channels"),
        (["--size", "16"], "too small"),
        (["--out", "/proc/nope/x.png"], "not writable"),
        (["--optimizer", "nosuch"], "ng:<Name>"),
        (["--optimizer", "cmaes", "--popsize", "1"], "must be an integer in [2, 100000]"),
        (["--optimizer", "hybrid:cmaes>nosuch"], "unknown part"),
        (["--param", "fft:k=x"], "k='x' is not allowed: must be an integer"),
        # the cases: each refused in one line before any model pass
        (["--option", "_kind=sgd"], "does not take option '_kind'"),
        (["--option", "lr=0.1", "--lr", "0.2"], "option lr is given twice"),
        (["--optimizer", "cmaes", "--option", "popsize=abc"], "popsize='abc' is not allowed"),
        (["--optimizer", "lbfgs", "--option", "max_iter=x"], "max_iter='x' is not allowed"),
        (["--optimizer", "momentum", "--option", "momentum=nan"], "momentum='nan' is not allowed"),
        (["--optimizer", "sgd", "--option", "blur_sigma=0"], "blur_sigma='0' is not allowed"),
        (["--optimizer", "cmaes", "--passes", "1"], "too small for one step of cmaes"),
        (["--optimizer", "ga", "--forwards", "3"], "give at least 20 forwards"),
        (["--optimizer", "hybrid:adam>cmaes"], "second part cmaes would continue in fft"),
        (["--optimizer", "cmaes", "--grad", "lapnorm"], "searches without them"),
        (["--param", "fft:decay=nan"], "decay='nan' is not allowed"),
        (["--param", "fft:sd=-1"], "sd='-1' is not allowed"),
        (["--param", "pyramid:levels=0"], "levels='0' is not allowed"),
        (["--target", "direction:blocks.4:0,0,0"], "non-zero vector"),
        (["--target", "class:8-0.1*diversity:blocks.4"], "use a batch of 2 or more"),
        (["--out", "y.xyz"], "extension '.xyz', which cannot be written as an image"),
        (["--out", "same.png", "--trace", "same.png"], "--out and --trace are the same file"),
        (["--snapshots", "/proc/version"], "is a file, not a folder"),
        (["--size", "16000"], "GB free"),
        (["--option", "nesterov=maybe", "--optimizer", "momentum"], "nesterov='maybe' is not allowed"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["viz", "--steps", "1", "--quiet"] + args
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fvopt: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["viz", "--seconds", "nan"], "argument --seconds: 'nan' is not allowed: must be a number > 0"),
        (["viz", "--lr", "inf"], "argument --lr: 'inf' is not allowed"),
        (["viz", "--lr", "nan"], "argument --lr: 'nan' is not allowed"),
        (["viz", "--sigma", "nan"], "argument --sigma: 'nan' is not allowed"),
        (["viz", "--seed", "-1"], "argument --seed: '-1' is not allowed"),
        (["viz", "--seed", "99999999999999999999"], "is not allowed"),
        (["viz", "--size", "100000"], "must be an integer in [1, 16384]"),
        (["dream", "--zoom", "nan", "--zoom-frames", "3"], "argument --zoom: 'nan' is not allowed"),
        (["dream", "--octave-scale", "1"], "must be a number in (1, 100]"),
        (["viz", "--option", "=3"], "must be KEY=VALUE"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and "\n" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "/tmp/fvopt-test.xyz"], "extension '.xyz'"),
        (["--octave-images", "/proc/version"], "is a file, not a folder"),
        (["--octaves", "9"], "below the model's minimum"),
    ],
)
def test_dream_refuses_bad_outputs_before_any_work(args, message, capsys):
    assert main(["dream", "--quiet", "--steps", "1"] + args) == 2
    assert message in capsys.readouterr().err


def test_a_photo_declaring_a_huge_size_is_refused_from_its_header(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("RGB", (20000, 200)).save(path)  # small file, 20000 px wide
    assert main(["dream", str(path), "--quiet", "--out", str(tmp_path / "d.png")]) == 2
    assert "image side=20000 is not allowed" in capsys.readouterr().err


def test_zero_order_search_space_is_the_same_in_viz_and_bench(tmp_path):
    from fvopt.bench.spec import parse_spec

    trace = tmp_path / "t.json"
    assert (
        main(
            [
                "viz",
                "--target",
                "channel:blocks.3:5",
                "--optimizer",
                "ga",
                "--param",
                "pixel",
                "--steps",
                "1",
                "--size",
                "64",
                "--out",
                str(tmp_path / "o.png"),
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    t = json.loads(trace.read_text())
    spec = parse_spec(
        {
            "bench": {"size": 64, "targets": ["channel:blocks.3:5"], "params": ["pixel"], "budget": {"steps": 1}},
            "strategies": [{"name": "ga"}],
        }
    )
    assert (t["param_requested"], t["param"]) == ("pixel", spec.cells[0].param_used) == ("pixel", "pixel:k=16")


def test_option_lr_is_accepted_and_recorded(tmp_path):
    trace = tmp_path / "t.json"
    assert (
        main(
            [
                "viz",
                "--option",
                "lr=0.1",
                "--steps",
                "1",
                "--size",
                "64",
                "--out",
                str(tmp_path / "o.png"),
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    t = json.loads(trace.read_text())
    assert t["optimizer"] == "adam" and t["options"] == {"lr": 0.1} and t["status"] if "status" in t else True


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fvopt.cli", "viz", "--model", "lite9", "--out", str(tmp_path / "a.png")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Known: lite0" in proc.stderr


def test_layers_and_models_commands(capsys):
    assert main(["layers", "lite0", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "blocks.4" in out and "112x4x4" in out
    assert main(["models"]) == 0 and "torchvision:<name>" in capsys.readouterr().out
    assert main(["optimizers"]) == 0 and "cmaes" in capsys.readouterr().out


def _interrupt_when(cmd: list[str], ready, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `cmd`, send it SIGINT (Ctrl-C) as soon as `ready()` is true, and collect what it printed."""
    import signal
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_during_viz_writes_the_best_image_and_its_trace(tmp_path):
    out, trace, snaps = tmp_path / "i.png", tmp_path / "i.json", tmp_path / "snaps"
    done = _interrupt_when(
        [
            sys.executable,
            "-m",
            "fvopt.cli",
            "viz",
            "--steps",
            "100000",
            "--size",
            "64",
            "--out",
            str(out),
            "--trace",
            str(trace),
            "--snapshots",
            str(snaps),
            "--snapshot-every",
            "3",
            "--quiet",
        ],
        lambda: len(list(snaps.glob("*.png"))) >= 2,
    )
    assert done.returncode == 130, done.stderr
    assert "interrupted after" in done.stderr and "kept the best image" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    t = json.loads(trace.read_text())  # strict JSON
    assert t["stop_reason"] == "interrupted" and len(t["steps"]) >= 6
    assert Image.open(out).size == (64, 64)


@pytest.mark.slow
def test_ctrl_c_during_dream_keeps_the_dream_so_far(tmp_path):
    out, octaves = tmp_path / "d.png", tmp_path / "oct"
    done = _interrupt_when(
        [
            sys.executable,
            "-m",
            "fvopt.cli",
            "dream",
            "--steps",
            "400",
            "--out",
            str(out),
            "--octave-images",
            str(octaves),
            "--quiet",
        ],
        lambda: (octaves / "octave_1.png").exists(),
    )
    assert done.returncode == 130 and "kept the dream so far" in done.stderr, done.stderr
    assert Image.open(out).size == (451, 300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["dream", "--scheme", "tf3"], "argument --scheme: unknown DeepDream scheme 'tf3'. Did you mean: tf2?"),
        (["dream", "--scheme", "2015", "--lapnorm-levels", "3"], "do not apply to scheme 2015"),
        (["dream", "--scheme", "tf2", "--lapnorm-levels", "3"], "do not apply to scheme tf2"),
        (["dream", "--scheme", "matlab", "--lapnorm-levels", "0"], "argument --lapnorm-levels: '0' is not allowed"),
        (["viz", "--tile", "0"], "argument --tile: '0' is not allowed"),
    ],
)
def test_dream_schemes_and_tiles_that_cannot_apply_are_refused_in_one_line_before_the_model(
    args, message, capsys, monkeypatch
):
    import fvopt.models

    monkeypatch.setattr(fvopt.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    try:
        code = main(args + ["--quiet"])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err


def test_dream_scheme_and_viz_tile_from_the_command_line(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)).save(src)
    assert (
        main(["dream", str(src), "--scheme", "matlab", "--steps", "1", "--out", str(tmp_path / "d.png"), "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert "scheme matlab: 3 octaves (2 above the input) x 1 steps, scale 1.4" in out and "tile 224 px" in out
    assert Image.open(tmp_path / "d.png").size == (100, 70)
    for tile, code in (("64", 0), ("16", 2), ("128", 2)):
        trace = tmp_path / f"t{tile}.json"
        assert (
            main(
                [
                    "viz",
                    "--size",
                    "96",
                    "--tile",
                    tile,
                    "--steps",
                    "1",
                    "--transforms",
                    "none",
                    "--out",
                    str(tmp_path / "v.png"),
                    "--trace",
                    str(trace),
                    "--quiet",
                ]
            )
            == code
        )
    assert json.loads((tmp_path / "t64.json").read_text())["tile"] == 64
    assert "tile 16 px must be between" in capsys.readouterr().err
