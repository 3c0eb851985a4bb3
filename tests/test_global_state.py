"""Library calls leave the process as they found it (issue 19): random generators, backend switches,
environment, warning filters and the matplotlib backend are the same after `visualize` and an
in-process `fvopt bench` as before, and the Hugging Face Hub is offline only inside a model load."""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import pytest
import torch

import fvopt
from fvopt.cli import main
from fvopt.runtime.scoped import process_state_kept, seed_all
from fvopt.runtime.speed import Speed

SPEC = """
[bench]
name = "state"
size = 64
seeds = [0]
targets = ["channel:blocks.2:0"]
params = ["fft"]
budget = { passes = 12 }

[[strategies]]
name = "adam"

[[strategies]]
name = "cmaes"
popsize = 4
"""


def snapshot() -> dict:
    """Every piece of process-wide state a library call could leave changed."""
    import matplotlib

    return {
        "torch_rng": torch.random.get_rng_state().clone(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
        "deterministic": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "threads": torch.get_num_threads(),
        "environ": dict(os.environ),
        "warning_filters": list(warnings.filters),
        "matplotlib_backend": matplotlib.get_backend(),
        "default_dtype": torch.get_default_dtype(),
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_same(before: dict, after: dict) -> None:
    assert torch.equal(before["torch_rng"], after["torch_rng"]), "torch's global generator changed"
    b, a = before["numpy_rng"], after["numpy_rng"]
    assert b[0] == a[0] and np.array_equal(b[1], a[1]) and b[2:] == a[2:], "numpy's global generator changed"
    for key in (
        "python_rng",
        "cudnn",
        "deterministic",
        "threads",
        "warning_filters",
        "matplotlib_backend",
        "default_dtype",
        "grad_enabled",
    ):
        assert before[key] == after[key], f"{key} changed: {before[key]!r} -> {after[key]!r}"
    changed = {
        k
        for k in before["environ"].keys() | after["environ"].keys()
        if before["environ"].get(k) != after["environ"].get(k)
    }
    assert not changed, f"environment variables changed: {sorted(changed)}"


# Third-party libraries fvopt imports lazily add warning filters when *they* are imported (pycma adds
# five): their import-time behavior is theirs, so they are imported before the state is recorded.
THIRD_PARTY = ("cma", "nevergrad", "scipy.stats", "matplotlib.figure", "pandas", "timm")


@pytest.fixture
def perturbed_state():
    """Non-default state, so a call that resets to a default (not to what it found) is caught too."""
    import importlib

    for name in THIRD_PARTY:
        importlib.import_module(name)
    torch.manual_seed(1234)
    np.random.seed(4321)
    random.seed(99)
    torch.rand(3)
    np.random.rand(2)
    yield


@pytest.mark.slow
def test_visualize_leaves_generators_backends_environment_and_warnings_as_found(lite0, perturbed_state):
    before = snapshot()
    # cmaes: pycma seeds numpy's global generator; deterministic + cudnn_benchmark: backend switches
    vis = fvopt.visualize(
        lite0,
        "channel:blocks.2:0",
        param="fft:k=3",
        optimizer="cmaes",
        options={"popsize": 4},
        size=64,
        passes=16,
        progress=False,
        speed=Speed(cudnn_benchmark=True, deterministic=True),
    )
    assert vis.result.forwards > 0
    assert_same(before, snapshot())
    # and the call is still reproducible: its own seed, not the caller's state, decides it
    torch.manual_seed(5)
    np.random.seed(5)
    again = fvopt.visualize(
        lite0,
        "channel:blocks.2:0",
        param="fft:k=3",
        optimizer="cmaes",
        options={"popsize": 4},
        size=64,
        passes=16,
        progress=False,
        speed=Speed(cudnn_benchmark=True, deterministic=True),
    )
    assert torch.equal(vis.images, again.images)


@pytest.mark.slow
def test_an_in_process_bench_run_and_report_leave_the_process_as_found(tmp_path, perturbed_state):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    db = tmp_path / "r.sqlite"
    import matplotlib  # imported before, as a user's notebook would have it

    before = snapshot()
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 0
    assert_same(before, snapshot())
    assert main(["bench", "report", str(db), "--out", str(tmp_path / "report"), "--no-html"]) == 0
    assert_same(before, snapshot())
    assert matplotlib.get_backend() == before["matplotlib_backend"]


def test_a_failing_call_restores_too(lite0, perturbed_state):
    before = snapshot()
    with pytest.raises(fvopt.FvoptError):
        with process_state_kept():
            seed_all(0)
            np.random.seed(0)
            random.seed(0)
            torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
            Speed(deterministic=True).apply_globally()
            raise fvopt.FvoptError("fails after changing everything")
    assert_same(before, snapshot())


def test_speed_applied_scopes_the_switches():
    before = snapshot()
    with Speed(cudnn_benchmark=True, deterministic=True).applied():
        assert torch.backends.cudnn.benchmark and torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert_same(before, snapshot())


def test_the_optimizers_notices_are_quiet_only_from_their_own_modules():
    from fvopt.strategies.evolution import quiet_numpy

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_numpy():
            for module in ("cma.evolution_strategy", "nevergrad.optimization.base", "fvopt.run", "mylab"):
                for category in (UserWarning, RuntimeWarning, DeprecationWarning):
                    warnings.warn_explicit(f"{category.__name__} from {module}", category, "x.py", 1, module=module)
    shown = {str(w.message) for w in seen}
    assert "UserWarning from cma.evolution_strategy" not in shown
    assert "RuntimeWarning from nevergrad.optimization.base" not in shown
    assert "DeprecationWarning from cma.evolution_strategy" in shown  # other categories still reach the user
    assert {
        f"{c} from {m}" for c in ("UserWarning", "RuntimeWarning", "DeprecationWarning") for m in ("fvopt.run", "mylab")
    } <= shown  # nothing from anywhere else is silenced


def test_the_hub_is_offline_inside_a_model_load_only(monkeypatch):
    pytest.importorskip("huggingface_hub")
    import socket

    import huggingface_hub
    import huggingface_hub.constants as hf_constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    from fvopt.models.offline import hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted inside hub_offline()")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and hf_constants.is_offline_mode()
        with pytest.raises(OfflineModeIsEnabled):  # refused before any socket is opened
            huggingface_hub.HfApi().model_info("timm/resnet18.a1_in1k")
    assert "HF_HUB_OFFLINE" not in os.environ and hf_constants.HF_HUB_OFFLINE is False
    # a process that chose offline mode itself keeps it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with hub_offline():
        pass
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hf_constants.HF_HUB_OFFLINE is True


def test_a_timm_load_leaves_the_hub_setting_as_found(monkeypatch):
    pytest.importorskip("timm")
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    seen = {}

    import timm

    real = timm.create_model

    def spy(*args, **kwargs):
        seen["offline"] = hf_constants.is_offline_mode()
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    fvopt.load_model("timm:resnet18", weights="random")
    assert seen["offline"] is True  # offline while timm builds the network
    assert "HF_HUB_OFFLINE" not in os.environ and hf_constants.HF_HUB_OFFLINE is False


def test_no_library_module_selects_a_matplotlib_backend_or_uses_pyplot():
    import re
    from pathlib import Path

    root = Path(fvopt.__file__).parent
    pattern = re.compile(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot|\bplt\.")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders, f"library modules that select a backend or use pyplot: {offenders}"


def test_loading_pretrained_weights_leaves_the_generators_and_random_weights_still_differ(perturbed_state):
    before = snapshot()
    fvopt.load_model("lite0")  # its initial weights are drawn, then replaced by the pretrained ones
    assert_same(before, snapshot())
    a = fvopt.load_model("torchvision:resnet18", weights="random")
    b = fvopt.load_model("torchvision:resnet18", weights="random")
    assert not torch.equal(a.net.fc.weight, b.net.fc.weight)  # random weights draw as torch.nn does
