"""Your own network: `fvopt.wrap`, `--model file.py:factory`, torch.export programs, TorchScript.

This file is also the factory file: `tests/test_own_models.py:small_cnn` is what the tests load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import fvopt
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.evaluate import score_images
from fvopt.models import capture, list_layers, load_model
from fvopt.objectives import parse_target

HERE = Path(__file__).resolve()


class SmallCNN(nn.Module):
    """A grayscale MNIST-sized CNN that runs at any size (global pooling before the head)."""

    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.head(self.pool(x).flatten(1))


def small_cnn() -> nn.Module:
    """The factory: the same weights every call."""
    torch.manual_seed(0)
    return SmallCNN()


def raises() -> nn.Module:
    raise RuntimeError("cannot build on this machine")


def not_a_module():
    return {"conv1": 3}


FACTORY = f"{HERE}:small_cnn"


def _acts(net: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """What `layer` outputs for x, read with a plain forward hook on the object itself."""
    seen = {}
    handle = net.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach().clone()))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return seen["out"]


def test_a_factory_file_gives_the_same_activations_as_the_object():
    model = load_model(FACTORY, device="cpu", input_size=28, mean=0.1307, std=0.3081)
    net = small_cnn().eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture(model, {"conv2", "act1"}) as cap:
        acts = cap.run(x)
    normalized = (x - 0.1307) / 0.3081
    assert torch.equal(acts["conv2"], _acts(net, "conv2", normalized))
    assert torch.equal(acts["act1"], _acts(net, "act1", normalized))
    assert model.channels == 1 and model.input_size == 28 and model.min_size == 28
    assert [i.name for i in list_layers(model)] == ["conv1", "act1", "conv2", "act2", "pool", "head"]


def test_weights_of_a_factory_network_come_from_weights(tmp_path):
    torch.manual_seed(5)
    other = SmallCNN()
    torch.save(other.state_dict(), tmp_path / "w.pt")
    model = load_model(FACTORY, weights=str(tmp_path / "w.pt"), input_size=28)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), other.eval()(x))
    assert model.weights == str(tmp_path / "w.pt")


def test_wrap_takes_any_module_and_visualize_takes_it():
    net = small_cnn()
    model = fvopt.wrap(net, mean=0.5, std=0.25, input_size=28)
    assert model.describe_input() == {
        "channels": 1,
        "input_size": [28, 28],
        "value_range": [0.0, 1.0],
        "mean": [0.5],
        "std": [0.25],
        "fixed_size": False,
    }
    vis = fvopt.visualize(model, "channel:conv2:3", "fft", steps=3, device="cpu", transforms="none")
    assert vis.images.shape == (1, 1, 28, 28)
    # the same arguments straight to visualize, with a plain module
    vis2 = fvopt.visualize(
        net, "channel:conv2:3", "fft", steps=3, device="cpu", transforms="none", mean=0.5, std=0.25, input_size=28
    )
    assert vis2.trace["input"] == vis.trace["input"]
    assert torch.allclose(vis2.images, vis.images)


def test_value_range_maps_0_1_onto_the_training_range():
    net = small_cnn()
    model = fvopt.wrap(net, input_size=28, value_range=(0, 255), mean=33.3, std=78.6)
    x = torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), net.eval()((x * 255 - 33.3) / 78.6), atol=1e-5)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("does/not/exist.py:make", "does not exist"),
        (f"{HERE}:raises", "the factory raised RuntimeError: cannot build on this machine"),
        (f"{HERE}:not_a_module", "returned a dict, not a torch.nn.Module"),
        (f"{HERE}:small_cn", "has no function 'small_cn'. Did you mean: small_cnn"),
        (str(HERE), "names a Python file but no function"),
    ],
)
def test_a_bad_factory_is_refused_in_one_line(spec, message):
    with pytest.raises(FvoptError, match=message.replace("(", r"\(").replace(".", r"\.")) as err:
        load_model(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"channels": 3}, "channels 3 does not fit .*first layer 'conv1' \\(Conv2d\\) takes 1 channel"),
        ({"mean": (0.1, 0.2)}, "mean has 2 values and the network takes 1 channel"),
        ({"std": (0.3, 0.3, 0.3)}, "std has 3 values and the network takes 1 channel"),
        ({"std": 0}, "every std must be > 0"),
        ({"value_range": (1, 0)}, "LO < HI"),
        ({"mean": "imagenet"}, "'imagenet' holds 3 values"),
    ],
)
def test_bad_preprocessing_is_refused_before_any_work(given, message):
    calls = []
    net = small_cnn()
    net.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(FvoptError, match=message) as err:
        fvopt.wrap(net, input_size=28, **given)
    assert "\n" not in str(err.value) and not calls  # refused before a single pass


def test_the_cli_refuses_channels_that_the_first_layer_does_not_take(capsys, tmp_path):
    code = main(["viz", "--model", FACTORY, "--channels", "3", "--steps", "1", "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "channels 3 does not fit" in err and "takes 1 channel" in err
    assert not (tmp_path / "o.png").exists()


def test_fvopt_layers_lists_a_factory_network(capsys):
    assert main(["layers", FACTORY, "--input-size", "28"]) == 0
    out = capsys.readouterr().out
    assert "at 28x28 px, 1 channel" in out and "conv2" in out and "nchw 16x14x14" in out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The factory's network exported with torch.export (dynamic batch and size), plus a copy with
    a layer the program never calls, and one exported for a fixed batch."""
    folder = tmp_path_factory.mktemp("export")
    net = small_cnn().eval()
    net.unused = nn.ReLU()  # a layer of the source that the exported graph never calls
    dims = {
        "x": {
            0: torch.export.Dim("batch", max=4096),
            2: torch.export.Dim("h", min=8, max=1024),
            3: torch.export.Dim("w", min=8, max=1024),
        }
    }
    program = torch.export.export(net, (torch.rand(2, 1, 28, 28),), dynamic_shapes=dims)
    torch.export.save(program, folder / "net.pt2")
    fixed = torch.export.export(small_cnn().eval(), (torch.rand(2, 1, 28, 28),))
    torch.export.save(fixed, folder / "fixed.pt2")
    return folder


@pytest.mark.slow
def test_an_exported_program_gives_the_same_channel_values(exported):
    model = load_model(str(exported / "net.pt2"))
    assert model.channels == 1 and model.input_hw == (28, 28) and not model.fixed_size
    net = small_cnn().eval()
    images = torch.rand(3, 1, 28, 36, generator=torch.Generator().manual_seed(2))
    objective = parse_target("channel:conv2:5")
    values = score_images(model, objective, images, draws=0)["value"]
    direct = _acts(net, "conv2", images)[:, 5].mean((1, 2))
    assert torch.allclose(values, direct, atol=1e-5)
    # the program's layers are listed, and a class target and a layer target run through it
    assert {"conv1", "conv2", "head"} <= {i.name for i in list_layers(model)}
    vis = fvopt.visualize(model, "channel:conv2:5", "fft", "cmaes", steps=3, transforms="none", device="cpu")
    assert vis.images.shape == (1, 1, 28, 28)


@pytest.mark.slow
def test_a_program_layer_that_cannot_be_hooked_is_refused_in_one_line(exported, capsys):
    model = load_model(str(exported / "net.pt2"))
    with pytest.raises(FvoptError, match="layer unused of the exported program cannot be hooked") as err:
        fvopt.visualize(model, "layer:unused", steps=1, device="cpu")
    assert "\n" not in str(err.value)
    code = main(["viz", "--model", str(exported / "fixed.pt2"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "exported for a batch of exactly 2 images" in err and "\n" not in err


@pytest.mark.slow
def test_torchscript_runs_class_targets_and_says_its_limit(tmp_path, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(small_cnn().eval()).save(str(tmp_path / "net.pt"))
    model = load_model(str(tmp_path / "net.pt"), input_size=28)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), small_cnn().eval()(x), atol=1e-6)
    vis = fvopt.visualize(model, "class:3", "fft", steps=3, transforms="none", device="cpu")
    assert vis.trace["final"]["value"] > -1e9
    with pytest.raises(FvoptError, match="TorchScript.*only class targets") as err:
        fvopt.visualize(model, "channel:conv2:1", steps=1, device="cpu")
    assert "\n" not in str(err.value)
    assert main(["layers", str(tmp_path / "net.pt"), "--input-size", "28"]) == 0
    assert "only class targets" in capsys.readouterr().out
    torch.save(small_cnn().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(FvoptError, match="is not a TorchScript file.*FILE.py:FACTORY --weights"):
        load_model(str(tmp_path / "weights.pt"))


@pytest.mark.slow
def test_the_cli_runs_a_factory_network_end_to_end(tmp_path):
    out, trace = tmp_path / "g.png", tmp_path / "t.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fvopt.cli",
            "viz",
            "--model",
            FACTORY,
            "--input-size",
            "28",
            "--mean",
            "0.1307",
            "--std",
            "0.3081",
            "--target",
            "channel:conv2:3",
            "--steps",
            "3",
            "--quiet",
            "--out",
            str(out),
            "--trace",
            str(trace),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (28, 28)
    import json

    t = json.loads(trace.read_text())
    assert t["input"]["mean"] == [0.1307] and t["decorrelation"] == "identity"
    assert t["transforms_fit"].startswith("pixel amounts x0.219 for 28x28 px")


@pytest.mark.slow
def test_a_bench_spec_runs_a_factory_network_with_its_input_table(tmp_path):
    from fvopt.bench.runner import run_spec
    from fvopt.bench.spec import load_spec

    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(f"""
[bench]
size = 28
models = ["{FACTORY}"]
targets = ["channel:conv2:3"]
params = ["fft"]
transforms = "none"
budget = {{ steps = 2 }}
input = {{ input_size = 28, mean = [0.1307], std = [0.3081] }}

[[strategies]]
name = "adam"
""")
    spec = load_spec(str(spec_path))
    assert spec.cells[0].preprocessing == {"input_size": 28, "mean": [0.1307], "std": [0.3081]}
    summary = run_spec(spec, str(tmp_path / "r.sqlite"), progress=False)
    assert (summary.ran, summary.failed) == (1, 0)
    bad = tmp_path / "bad.toml"
    bad.write_text(spec_path.read_text().replace("mean = [0.1307]", "mean = [0.1, 0.2]"))
    with pytest.raises(FvoptError, match="bench.models\\[0\\].*mean has 2 values and the network takes 1 channel"):
        run_spec(load_spec(str(bad)), str(tmp_path / "r2.sqlite"), progress=False)
    with pytest.raises(FvoptError, match="bench.input.chanels: unknown key"):
        bad.write_text(spec_path.read_text().replace("input_size = 28", "chanels = 1"))
        load_spec(str(bad))


def test_the_readme_python_example_of_your_own_model_runs(tmp_path, monkeypatch):
    """README's "Your own model" Python block, as printed (only the steps shrink, the file goes to tmp)."""
    import re

    root = HERE.parents[1]
    section = (root / "README.md").read_text().split("## Your own model, any input", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    code = code.replace("steps=128", "steps=3").replace('vis.save("stripes.png")', f'vis.save("{tmp_path}/s.png")')
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root / "docs" / "examples"))
    exec(compile(code, "README.md", "exec"), {})
    with Image.open(tmp_path / "s.png") as img:
        assert img.mode == "L" and img.size == (28, 28)


def test_a_network_with_uninitialized_lazy_layers_is_refused_in_one_line():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    with pytest.raises(FvoptError, match="lazy layers whose parameters are not yet initialized"):
        fvopt.visualize(net, "class:1", steps=2, size=64, progress=False)


def test_a_grayscale_run_is_judged_by_its_spectrum_only_and_says_why(tmp_path):
    """Quality measures compare with RGB photos and ImageNet judges: a 1-channel run gets the
    spectral slope, every other measure absent with its reason, never an error or a wrong number;
    a reference given for it is refused before the run (issue 26), not dropped."""
    model = fvopt.wrap(small_cnn(), mean=0.5, std=0.25, input_size=28)
    with pytest.raises(FvoptError, match="reference builtin: the reference photos are RGB"):
        fvopt.visualize(model, "channel:conv2:3", "fft", steps=3, device="cpu", reference="builtin", progress=False)
    vis = fvopt.visualize(
        model, "channel:conv2:3", "fft", steps=3, device="cpu", transforms="none", measures="default", progress=False
    )
    q = vis.trace["quality"]
    assert "error" not in q and q["measures"] == ["spectral_slope"]
    assert q["reference"] == "none"
    assert "1 channel" in q["natural_ratio_absent"] and "1 channel" in q["mis_absent"]
    assert q["spectral_slope"] == pytest.approx(float(fvopt.quality.spectral_slopes(vis.images)[0]), abs=1e-6)
    with pytest.raises(FvoptError, match="mis compares with RGB reference photos"):
        fvopt.visualize(model, "channel:conv2:3", "fft", steps=3, device="cpu", measures="mis")
