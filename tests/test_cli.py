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
    assert main(["viz", "--target", "class:8", "--steps", "40", "--out", str(out), "--trace", str(trace), "--quiet"]) == 0
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
    code = main(["viz", "--target", "channel:blocks.3:0-3", "--steps", "3", "--size", "64", "--out", str(out),
                 "--trace", str(trace), "--quiet", "--snapshots", str(tmp_path / "snaps"), "--snapshot-every", "1"])
    assert code == 0
    t = json.loads(trace.read_text())
    assert t["batch"] == 4 and t["forwards"] == 12
    assert t["final"]["per_image"]["labels"] == ["blocks.3:0", "blocks.3:1", "blocks.3:2", "blocks.3:3"]
    width, height = Image.open(out).size
    assert width > 2 * 64 and height > 2 * 64
    assert len(list((tmp_path / "snaps").glob("*.png"))) == 3


def test_zero_order_cli_defaults_to_low_dimensional_fft(tmp_path):
    trace = tmp_path / "t.json"
    assert main(["viz", "--target", "channel:blocks.3:5", "--optimizer", "cmaes", "--popsize", "6", "--steps", "2",
                 "--size", "64", "--out", str(tmp_path / "o.png"), "--trace", str(trace), "--quiet"]) == 0
    t = json.loads(trace.read_text())
    assert (t["param"], t["param_dim"], t["forwards"], t["backwards"]) == ("fft:k=8", 918, 12, 0)


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--target", "channel:block.4:1"], "Did you mean: blocks.4"),
    (["--target", "channel:blocks.4:500"], "has 112 channels"),
    (["--size", "16"], "too small"),
    (["--out", "/proc/nope/x.png"], "not writable"),
    (["--optimizer", "nosuch"], "ng:<Name>"),
    (["--optimizer", "cmaes", "--popsize", "1"], "at least 2"),
    (["--optimizer", "hybrid:cmaes>nosuch"], "unknown part"),
    (["--param", "fft:k=x"], "must be int"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys, tmp_path):
    argv = ["viz", "--steps", "1", "--quiet"] + args
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fvopt: error:") and message in err and "\n" not in err


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fvopt.cli", "viz", "--model", "lite9", "--out", str(tmp_path / "a.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Known: lite0" in proc.stderr


def test_layers_and_models_commands(capsys):
    assert main(["layers", "lite0", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "blocks.4" in out and "112x4x4" in out
    assert main(["models"]) == 0 and "torchvision:<name>" in capsys.readouterr().out
    assert main(["optimizers"]) == 0 and "cmaes" in capsys.readouterr().out
