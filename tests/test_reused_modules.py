"""Modules that run more than once per forward: refused without a call, read by call as `LAYER#K`.

torchvision's BasicBlock calls its one `relu` module twice; a block applied in a loop runs its
modules once per step. A hook on such a module fires at every call, so a bare name is ambiguous:
fvopt refuses it, naming the module, its call count and the `#K` spellings, and `LAYER#K` reads
exactly the K-th call (1-based).
"""

from __future__ import annotations

import textwrap

import pytest
import torch
import torchvision
from torch import nn

import fvopt
from fvopt.atlases.plan import resolve_layers
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.models import capture
from fvopt.params.registry import make_param
from fvopt.problem import Problem
from fvopt.transforms.grammar import make_transforms


class Looped(nn.Module):
    """One convolution applied three times (a block in a loop), and one ReLU after each conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.step = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        for _ in range(3):
            x = self.act(self.step(x))
        return self.head(x.mean((2, 3)))


@pytest.fixture(scope="module")
def resnet18():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.resnet18(weights=None)
    return fvopt.wrap(net, mean="imagenet", std="imagenet", input_size=224, name="resnet18")


@pytest.fixture(scope="module")
def looped():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Looped()
    return fvopt.wrap(net, input_size=32, name="looped")


def _problem(model, target: str, size: int) -> Problem:
    return Problem(model, fvopt.parse_target(target), make_param("pixel", size), make_transforms("none"))


def _every_call(model, module: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """A plain forward hook on `module`: its output at every call of one forward pass."""
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda mod, inputs, output: outputs.append(output.detach().clone()))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return outputs


def test_a_relu_called_twice_is_refused_in_one_line_naming_the_module_and_its_two_calls(resnet18):
    with pytest.raises(FvoptError) as err:
        _problem(resnet18, "channel:layer1.0.relu:7", 64)
    text = str(err.value)
    assert "\n" not in text
    assert "layer1.0.relu of resnet18 runs 2 times per forward" in text
    assert "layer1.0.relu#1 or layer1.0.relu#2" in text


def test_relu_hash_2_reads_what_a_hand_written_hook_on_the_second_call_reads(resnet18):
    problem = _problem(resnet18, "channel:layer1.0.relu#2:7", 64)
    Z = torch.randn(3, 1, problem.dim, generator=torch.Generator().manual_seed(1))
    values = problem.evaluate(Z).flatten()
    calls = _every_call(resnet18, resnet18.net.layer1[0].relu, problem.images(Z.reshape(3, -1)))
    assert len(calls) == 2
    by_hand = calls[1][:, 7].mean((1, 2))
    assert torch.allclose(values, by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(calls[0][:, 7].mean((1, 2)), by_hand)  # the first call reads something else
    first = _problem(resnet18, "channel:layer1.0.relu#1:7", 64).evaluate(Z).flatten()
    assert torch.allclose(first, calls[0][:, 7].mean((1, 2)), rtol=1e-5, atol=1e-6)
    values_grad, grad = problem.value_and_grad(Z[0])  # the gradient path reads the same call
    assert torch.allclose(values_grad, values[:1], rtol=1e-5, atol=1e-6) and grad.abs().sum() > 0


@pytest.mark.parametrize(
    "layer, says",
    [
        ("layer1.0.relu#3", "#3 is out of range; layer1.0.relu runs 2 times per forward: use layer1.0.relu#1 or"),
        ("layer1.0.relu#0", "must be a whole number from 1; layer1.0.relu runs 2 times per forward: use"),
        ("layer1.0.relu#x", "must be a whole number from 1; layer1.0.relu runs 2 times per forward: use"),
        ("layer1.0.relu#", "must be a whole number from 1; layer1.0.relu runs 2 times per forward: use"),
        ("conv1#2", "#2 is out of range; conv1 runs once per forward: use conv1 (or conv1#1)"),
        ("nosuchlayer#2", "unknown layer 'nosuchlayer#2'"),
    ],
)
def test_a_call_out_of_range_or_not_a_number_is_refused_naming_the_allowed_calls(resnet18, layer, says):
    with pytest.raises(FvoptError) as err:
        _problem(resnet18, f"channel:{layer}:7", 64)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_module_called_once_reads_the_same_with_or_without_hash_1(resnet18):
    Z = torch.randn(2, 1, 3 * 64 * 64, generator=torch.Generator().manual_seed(2))
    plain = _problem(resnet18, "channel:layer2.0.conv1:5", 64).evaluate(Z)
    first = _problem(resnet18, "channel:layer2.0.conv1#1:5", 64).evaluate(Z)
    assert torch.equal(plain, first) and plain.abs().sum() > 0


def test_each_call_of_a_conv_in_a_loop_reads_that_call(looped):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    calls = _every_call(looped, looped.net.step, images)
    assert len(calls) == 3
    with torch.no_grad(), capture(looped, {"step#1", "step#2", "step#3"}) as cap:
        acts = cap.run(images)
    for k in range(3):
        assert torch.equal(acts[f"step#{k + 1}"], calls[k])
    with pytest.raises(FvoptError, match="layer step of looped runs 3 times per forward .*step#1 or step#2 or step#3"):
        _problem(looped, "channel:step:0", 32)
    with pytest.raises(FvoptError, match="layer act of looped runs 4 times per forward"):
        _problem(looped, "neuron:act:0", 32)


def test_the_pass_stops_only_after_the_call_it_needs(looped):
    """Stop-early raises in the hook that completes the set: for step#2, after the second call of
    step (the third never runs, nor the head); for step#3, after the third."""
    seen: list[str] = []
    handles = [
        looped.net.step.register_forward_hook(lambda *a: seen.append("step")),
        looped.net.head.register_forward_hook(lambda *a: seen.append("head")),
    ]
    try:
        for wanted, runs in (("step#2", 2), ("step#3", 3)):
            seen.clear()
            with torch.no_grad(), capture(looped, {wanted}) as cap:
                cap.run(looped.blank(32))
            assert seen == ["step"] * runs
    finally:
        for h in handles:
            h.remove()


def test_model_layers_lists_each_reused_module_with_its_calls_shapes_and_spellings(resnet18, looped):
    layers = {info.name: info for info in resnet18.layers(64)}
    relu = layers["layer1.0.relu"]
    assert relu.calls == 2 and relu.call is None and relu.layout is None
    assert relu.spellings == ("layer1.0.relu#1", "layer1.0.relu#2")
    assert "runs 2 times per forward: layer1.0.relu#1, layer1.0.relu#2" in relu.describe()
    second = layers["layer1.0.relu#2"]
    assert second.call == 2 and second.shape == (64, 16, 16) and second.layout.describe() == "nchw 64x16x16"
    assert layers["conv1"].calls == 1 and layers["conv1"].spellings == () and layers["conv1"].shape == (64, 32, 32)
    assert layers["fc"].shape == (1000,) and layers["fc"].layout.kind == "vector"
    reused = {info.name for info in resnet18.layers(64) if info.calls > 1 and info.call is None}
    assert reused == {f"layer{i}.{j}.relu" for i in range(1, 5) for j in range(2)}
    assert "layer1.0.relu#2" not in resnet18.layer_names() and "layer1.0.relu" in resnet18.layer_names()
    names = [info.name for info in looped.layers()]
    assert names == ["stem", "act", "act#1", "act#2", "act#3", "act#4", "step", "step#1", "step#2", "step#3", "head"]


@pytest.mark.parametrize(
    "size, says",
    [("abc", "size 'abc' is not allowed"), (0, "size=0 is not allowed"), (8, "size 8 px is too small for looped")],
)
def test_model_layers_refuses_a_bad_size_in_one_line_before_any_probe(looped, size, says):
    with pytest.raises(FvoptError, match=says):
        looped.layers(size)


@pytest.mark.slow
def test_a_timm_vit_reuses_no_module_and_nothing_is_refused():
    timm = pytest.importorskip("timm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64)
    model = fvopt.wrap(net, input_size=64, name="vit")
    layers = model.layers()
    assert len(layers) > 100 and all(info.calls == 1 and info.call is None for info in layers)
    Z = torch.randn(1, 1, 3 * 64 * 64, generator=torch.Generator().manual_seed(4))
    for target in ("channel:blocks.0.mlp.fc1:3", "token:blocks.11:5", "channel:blocks.0.attn.qkv#1:2"):
        assert torch.isfinite(_problem(model, target, 64).evaluate(Z)).all()


def test_atlas_layers_take_hash_k_and_refuse_a_reused_module_without_it(looped):
    assert resolve_layers(looped, ["step#2", "head"], 32) == {"step#2": 8, "head": 4}
    assert {"step#1", "step#2", "step#3", "act#4"} <= set(resolve_layers(looped, ["all"], 32))
    with pytest.raises(FvoptError, match="layer step of looped runs 3 times per forward"):
        resolve_layers(looped, ["step"], 32)
    with pytest.raises(FvoptError, match="#4 is out of range; step runs 3 times"):
        resolve_layers(looped, ["step#4"], 32)


def test_reference_statistics_of_a_call_are_that_calls_activations(looped, tmp_path):
    from fvopt.quality.activations import reference_pass
    from fvopt.quality.reference import reference_set
    from fvopt.quality.synthetic import make_folder

    make_folder(tmp_path / "ref", n=6)
    ref = reference_set(str(tmp_path / "ref"))
    stats = reference_pass(looped, ref, ["step#2", "step#3"], side=32, progress=False, use_cache=False)
    images = next(iter(ref.batches(32, 64, 0))).images
    calls = _every_call(looped, looped.net.step, images)
    assert torch.allclose(stats["step#2"].mean, calls[1].mean((2, 3)), atol=1e-2)  # the cache keeps float16
    assert torch.allclose(stats["step#3"].mean, calls[2].mean((2, 3)), atol=1e-2)
    assert not torch.allclose(stats["step#2"].mean, stats["step#3"].mean, atol=1e-2)
    with pytest.raises(FvoptError, match="runs 3 times per forward"):
        reference_pass(looped, ref, ["step"], side=32, progress=False, use_cache=False)


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(
        textwrap.dedent(
            """
            import torchvision
            from torch import nn


            def resnet18():
                return torchvision.models.resnet18(weights=None)


            class Looped(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.stem = nn.Conv2d(3, 8, 3, padding=1)
                    self.step = nn.Conv2d(8, 8, 3, padding=1)
                    self.head = nn.Linear(8, 4)

                def forward(self, x):
                    x = self.stem(x)
                    for _ in range(3):
                        x = self.step(x).relu()
                    return self.head(x.mean((2, 3)))


            def looped():
                return Looped()
            """
        )
    )
    return path


def test_fvopt_layers_lists_the_call_counts_and_hash_k_spellings(factory, capsys):
    assert main(["layers", f"{factory}:looped", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "runs 3 times per forward: step#1, step#2, step#3" in out
    rows = [line.split()[0] for line in out.splitlines()[2:] if line.split()]
    assert rows[:6] == ["stem", "step", "step#1", "step#2", "step#3", "head"]


def test_the_cli_refuses_a_reused_module_without_a_call_with_exit_2_and_one_line(factory, tmp_path, capsys):
    argv = ["viz", "--model", f"{factory}:resnet18", "--target", "channel:layer1.0.relu:7", "--size", "64"]
    assert main(argv + ["--steps", "1", "--out", str(tmp_path / "x.png"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer1.0.relu" in err and "runs 2 times per forward" in err
    assert "layer1.0.relu#1 or layer1.0.relu#2" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_the_compiled_pass_reads_the_same_call_as_the_eager_one(looped):
    from fvopt.runtime.speed import Speed

    target = fvopt.parse_target("channel:step#2:1+channel:step#3:2")
    Z = torch.randn(2, 1, 3 * 32 * 32, generator=torch.Generator().manual_seed(5))
    values = {}
    for label, speed in {"eager": Speed(), "compiled": Speed(compile="default")}.items():
        problem = Problem(looped, target, make_param("pixel", 32), make_transforms("none"), speed=speed)
        values[label] = problem.evaluate(Z)
    assert torch.allclose(values["compiled"], values["eager"], rtol=1e-4, atol=1e-6)
