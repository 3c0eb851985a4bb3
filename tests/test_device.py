"""The device-resident path, checked on the CPU: same values as a hand-written loop, no host sync
and no blocking host-to-device copy inside a first-order step, draws on the model's device.

There is no GPU here: the "meta" device stands in for one. A step run on meta tensors fails on any
read back to the host (meta tensors have no values) and a guard records every copy from the CPU.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.runtime.speed import Speed
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms
from tiny import tiny_model

HOST_READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"}


class HostTraffic(TorchFunctionMode):
    """Records reads of device tensors back to the host, and blocking copies from the CPU to a device."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        first = args[0] if args else None
        if name in HOST_READS and isinstance(first, torch.Tensor) and first.device.type != "cpu":
            self.events.append(f"read back: Tensor.{name}")
        if name == "to" and isinstance(first, torch.Tensor) and first.device.type == "cpu":
            target = next(
                (
                    a
                    for a in list(args[1:]) + list(kwargs.values())
                    if isinstance(a, (torch.device, str)) and str(a) != "cpu"
                ),
                None,
            )
            if target is not None and not kwargs.get("non_blocking", False):
                self.events.append(f"blocking copy to {target}: {tuple(first.shape)}")
        if name in ("tensor", "as_tensor") and str(kwargs.get("device", "cpu")) != "cpu":
            self.events.append(f"torch.{name} built from host data on {kwargs['device']}")
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    "target, transforms, grad", [("class:3", "default", None), ("channel:conv2:0-2", "color", "lapnorm")]
)
def test_a_first_order_step_reads_nothing_back_and_copies_nothing_blocking(target, transforms, grad):
    from fvopt.gradients import make_image_grad

    model = tiny_model().to("meta")
    problem = Problem(
        model,
        parse_target(target),
        make_param("fft", 32),
        make_transforms(transforms),
        image_grad=make_image_grad(grad) if grad else None,
    )
    strategy = make_strategy("adam")
    strategy.start(problem, problem.init())
    strategy.step(problem)  # warm-up: constants are made once per device
    guard = HostTraffic()
    with guard:
        for _ in range(3):
            strategy.step(problem)
    assert guard.events == []
    assert problem.best_values.device.type == "meta" and problem.best_z.device.type == "meta"


def test_the_guard_catches_a_host_read_and_a_blocking_copy():
    guard = HostTraffic()
    x = torch.zeros(3, device="meta")
    with guard:
        torch.ones(2).to("meta")
        try:
            x.sum().item()
        except Exception:  # noqa: BLE001  (meta tensors have no value: reading one fails, as it should)
            pass
    assert any("blocking copy" in e for e in guard.events) and any("item" in e for e in guard.events)


def test_the_step_gives_the_values_of_a_hand_written_adam_loop():
    """The device-resident bookkeeping changes nothing: fvopt's trace equals plain torch code."""
    model = tiny_model()
    problem = Problem(model, parse_target("channel:conv2:3"), make_param("fft", 32), make_transforms("default"), seed=4)
    result = run(problem, make_strategy("adam", lr=0.05), Budget(steps=5))
    z = problem.init().clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(4)
    opt = torch.optim.Adam([z], lr=0.05, maximize=True)
    values = []
    for _ in range(5):
        draw = problem.transforms.sample(generator)
        feats = {}
        handle = model.net.conv2.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
        model(problem.transforms.apply(problem.param(z), draw))
        handle.remove()
        value = feats["a"][:, 3].mean()
        (grad,) = torch.autograd.grad(value, z)
        values.append(float(value.detach()))
        z.grad = grad
        opt.step()
    assert [r["value"] for r in result.trace] == pytest.approx(values, rel=1e-5, abs=1e-6)
    assert torch.allclose(problem.best_values, torch.tensor([max(values)]), atol=1e-6)


@pytest.mark.parametrize("name", ["ga", "guided-es"])
def test_population_draws_are_made_on_the_models_device(name):
    problem = Problem(tiny_model(), parse_target("channel:conv2:3"), make_param("fft:k=4", 32))
    strategy = make_strategy(name)
    run(problem, strategy, Budget(steps=2))
    assert strategy.rng.device == problem.device
    population = getattr(strategy, "pop", getattr(strategy, "z", None))
    assert population.device == problem.device


def test_speed_settings_keep_the_objective_close_and_are_recorded():
    model = tiny_model()
    z = make_param("fft", 32).init(2, torch.Generator().manual_seed(0))
    values = {}
    for label, speed in {"eager": Speed(), "bf16": Speed(bf16=True), "nhwc": Speed(channels_last=True)}.items():
        problem = Problem(
            model, parse_target("channel:conv2:3"), make_param("fft", 32), make_transforms("none"), batch=2, speed=speed
        )
        values[label] = problem.evaluate(z)
        assert values[label].dtype == torch.float32
    assert torch.allclose(values["nhwc"], values["eager"], atol=1e-5)
    assert torch.allclose(values["bf16"], values["eager"], rtol=0.05, atol=0.01)


def test_auto_population_chunks_follow_free_memory_and_change_no_value(monkeypatch):
    import fvopt.runtime.memory as memory

    model = tiny_model()
    Z = make_param("fft:k=4", 32).init(12, torch.Generator().manual_seed(0)).view(12, 1, -1)
    fixed = Problem(model, parse_target("channel:conv2:3"), make_param("fft:k=4", 32), make_transforms("none"))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 5 * memory.estimate_bytes(model, 32, 1, False))
    auto = Problem(
        model, parse_target("channel:conv2:3"), make_param("fft:k=4", 32), make_transforms("none"), max_batch="auto"
    )
    assert auto.max_batch == 5
    assert torch.allclose(auto.evaluate(Z), fixed.evaluate(Z), atol=1e-6)


def test_gpu_benchmark_says_clearly_that_there_is_no_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run benchmarks/gpu.py itself")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=script.parent)
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr and "Traceback" not in done.stderr


# -- compile (Speed.compile) --------------------------------------------------------------------


def test_compile_mode_is_checked_where_it_enters():
    from fvopt.errors import FvoptError

    for bad in ("fast", "", True, None):
        with pytest.raises(FvoptError) as err:
            Speed(compile=bad)
        message = str(err.value)
        assert "\n" not in message and repr(bad) in message and "off, default, reduce-overhead, max-autotune" in message
    assert Speed(compile="max-autotune").describe()["compile"] == "max-autotune"


def test_compile_on_the_cli_refuses_a_bad_mode_in_one_line(capsys):
    from fvopt.cli import main

    with pytest.raises(SystemExit) as done:
        main(["viz", "--compile", "fast"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert "'fast'" in err and "off, default, reduce-overhead, max-autotune" in err


class Forwards:
    """Counts the network's forward passes (a pre-hook), to show a refusal came before any."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.count = 0
        self.handle = net.register_forward_pre_hook(lambda module, args: setattr(self, "count", self.count + 1))


def test_compile_without_a_cpp_compiler_is_refused_before_any_model_pass(monkeypatch, tmp_path, capsys):
    import fvopt.runtime.speed
    from fvopt.cli import main
    from fvopt.errors import FvoptError

    monkeypatch.setattr(fvopt.runtime.speed, "_cpp_compiler", lambda: None)
    model = tiny_model()
    forwards = Forwards(model.net)
    with pytest.raises(FvoptError, match="needs a C\\+\\+ compiler") as err:
        Problem(model, parse_target("channel:conv2:3"), make_param("fft", 32), speed=Speed(compile="default"))
    assert "\n" not in str(err.value) and forwards.count == 0
    Problem(model, parse_target("channel:conv2:3"), make_param("fft", 32), speed=Speed(compile="off"))
    assert forwards.count > 0  # the counter counts: the eager problem's probe went through it
    out = tmp_path / "x.png"
    assert main(["viz", "--compile", "reduce-overhead", "--device", "cpu", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a C++ compiler" in err and not out.exists()


class BreaksTheGraph(torch.nn.Module):
    """A network whose forward dynamo cannot keep in one graph."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        torch._dynamo.graph_break()
        return self.fc(x.mean((2, 3)))


def test_a_network_that_breaks_the_graph_is_refused_up_front():
    from fvopt.errors import FvoptError
    from fvopt.models import FeatureModel

    model = FeatureModel(BreaksTheGraph(), "breaks", input_size=32, min_size=8, weights="random")
    with pytest.raises(FvoptError, match="breaks does not compile as one graph") as err:
        Problem(model, parse_target("channel:conv:1"), make_param("fft", 32), speed=Speed(compile="default"))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_compiled_pass_gives_the_eager_values_and_gradients_and_is_recorded():
    """Compile must not change answers: population values, values and gradients of a step, and a
    whole run's trace equal eager ones. And it must really run compiled: graphs were made, none
    broken, and later steps reuse them (fvopt's usual per-call hooks recompiled or graph-broke)."""
    from torch._dynamo.utils import counters
    from fvopt.viz import visualize

    model = tiny_model()
    target = "channel:conv2:3+0.5*class:2"  # a hooked layer and the logits in one pass
    z = make_param("fft", 32).init(2, torch.Generator().manual_seed(0))
    Z = torch.stack([z, 0.5 * z, 2 * z])
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    answers = {}
    for label, speed in {"eager": Speed(), "compiled": Speed(compile="default")}.items():
        problem = Problem(
            model, parse_target(target), make_param("fft", 32), make_transforms("default"), batch=2, speed=speed
        )
        answers[label] = [problem.evaluate(Z), *problem.value_and_grad(z), *problem.value_and_grad(0.7 * z)]
    made = counters["stats"]["unique_graphs"]
    assert made >= graphs + 2  # a no-grad and a grad graph at least
    problem.evaluate(Z), problem.value_and_grad(1.3 * z), problem.value_and_grad(0.2 * z)
    assert counters["stats"]["unique_graphs"] == made and sum(counters["graph_break"].values()) == breaks
    for eager, compiled in zip(answers["eager"], answers["compiled"]):
        assert torch.allclose(compiled, eager, rtol=1e-4, atol=1e-6)
    runs = {
        label: visualize(
            model, target, "fft", "adam", steps=3, size=32, batch=2, transforms="default", speed=speed, device="cpu"
        ).trace
        for label, speed in {"eager": Speed(), "compiled": Speed(compile="reduce-overhead")}.items()
    }
    assert runs["compiled"]["speed"]["compile"] == "reduce-overhead" and runs["eager"]["speed"]["compile"] == "off"
    assert [s["value"] for s in runs["compiled"]["steps"]] == pytest.approx(
        [s["value"] for s in runs["eager"]["steps"]], rel=1e-4, abs=1e-6
    )


# -- CMA-ES: one copy of the population in, one copy of the fitness out ------------------------


class Transfers(TorchFunctionMode):
    """Records copies between the host and a meta device. A copy back from meta (which has no
    values) is answered with zeros, so pycma, which lives in numpy, can run on a stand-in GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.copies_in: list[tuple] = []
        self.copies_out: list[tuple] = []
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        first = args[0] if args else None
        if isinstance(first, torch.Tensor):
            rest = list(args[1:]) + list(kwargs.values())
            dest = next((str(a) for a in rest if isinstance(a, (torch.device, str))), None)
            if first.device.type == "meta" and (name == "cpu" or (name == "to" and dest == "cpu")):
                self.copies_out.append(tuple(first.shape))
                dtype = next((a for a in rest if isinstance(a, torch.dtype)), first.dtype)
                return torch.zeros(first.shape, dtype=dtype)
            if first.device.type == "cpu" and name == "to" and dest not in (None, "cpu"):
                self.copies_in.append(tuple(first.shape))
            if first.device.type == "meta" and name in HOST_READS:
                self.reads.append(name)
        return func(*args, **kwargs)


def test_cmaes_evaluates_its_population_on_the_device_with_one_copy_each_way(monkeypatch):
    model = tiny_model().to("meta")
    problem = Problem(model, parse_target("channel:conv2:3"), make_param("fft:k=4", 32), batch=2)
    strategy = make_strategy("cmaes", popsize=6, sigma=0.1)
    strategy.start(problem, make_param("fft:k=4", 32).init(2, torch.Generator().manual_seed(0)))
    evaluated = []
    values = Problem._values
    monkeypatch.setattr(
        Problem, "_values", lambda self, cap, z, draw: evaluated.append(z) or values(self, cap, z, draw)
    )
    with Transfers():
        strategy.step(problem)  # warm-up: constants are made once per device
    guard = Transfers()
    with guard:
        for _ in range(3):
            strategy.step(problem)
    population = (6, 2, problem.dim)
    assert [c for c in guard.copies_in if len(c) == 3] == [population] * 3  # nothing else of that rank crossed
    assert guard.copies_out == [(6, 2)] * 3 and guard.reads == []
    assert evaluated and all(z.device.type == "meta" for z in evaluated)
    assert strategy.best.device.type == "meta"


def test_the_largest_pass_is_a_chunk_of_max_batch_never_splits_a_candidate_and_never_exceeds_a_step():
    from fvopt.runtime.memory import largest_pass

    assert largest_pass(forwards=100, max_batch=8, slots=3) == 8  # a population of 100 in chunks of 8
    assert largest_pass(forwards=100, max_batch=2, slots=5) == 5  # one candidate's 5 images go together
    assert largest_pass(forwards=4, max_batch=64, slots=1) == 4  # a step has only 4 images to pass
    assert largest_pass(forwards=100, max_batch="auto", slots=3) == 3  # auto picks what fits, from 1 up
