"""Your generator, and Lucid's CPPN, as the search space (issue 18 item 4).

The conformance suite (tests/test_conformance_params.py) runs over both with the random small
generator of tests/tiny_generator.py; here: CMA-ES and Adam raise a Lite0 unit through them, an
exported generator gives the same images as the module, the latent box holds, bad generators are
refused in one line before any model pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.params.cppn import CPPNParam
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.strategies.base import search_space
from fvopt.transforms import make_transforms

TINY = Path(__file__).with_name("tiny_generator.py")
UNIT = "channel:blocks.4:7"


def _raise(model, param, optimizer: str, steps: int, **options) -> tuple[float, float, Problem]:
    """(value at the start, best value the run found) of UNIT through `param`."""
    strategy = make_strategy(optimizer, **options)
    space = search_space(strategy, param)
    problem = Problem(model, parse_target(UNIT), space, make_transforms("none"), seed=0)
    z0 = problem.init()
    start = float(problem.evaluate(z0).mean())
    run(problem, strategy, Budget(steps=steps), z0=z0)
    return start, float(problem.best_values.max()), problem


@pytest.mark.slow
def test_cmaes_raises_a_unit_through_a_random_small_generator(lite0):
    param = make_param(f"generator:{TINY}:make,range=3", 64)
    start, best, problem = _raise(lite0, param, "cmaes", 6, popsize=8)
    assert problem.param is param and param.dim == 12  # the latent code itself is searched
    assert best > start + 0.05 * abs(start)


@pytest.mark.slow
def test_adam_raises_a_unit_through_the_generator_and_the_latent_stays_in_its_box(lite0):
    param = make_param(f"generator:{TINY}:make,range=0.5", 64)
    start, best, problem = _raise(lite0, param, "adam", 6, lr=0.3)
    assert best > start
    assert float(problem.best_z.abs().max()) <= 0.5 + 1e-6  # project_ clips after each update


def test_the_latent_box_renders_a_value_outside_it_as_the_clipped_value():
    param = make_param(f"generator:{TINY}:make,range=1", 32)
    z = torch.linspace(-3, 3, 24).reshape(2, 12)
    assert torch.equal(param(z), param(z.clamp(-1, 1)))


@pytest.mark.slow
def test_cmaes_raises_a_unit_through_the_cppn(lite0):
    param = make_param("cppn", 64)
    start, best, problem = _raise(lite0, param, "cmaes", 6, popsize=8)
    assert problem.param.name == "cppn:reduced=true" and problem.param.dim == 339  # biases + output layer
    assert best > start + 0.05 * abs(start)


@pytest.mark.slow
def test_adam_at_lucents_cppn_rate_raises_a_unit(lite0):
    start, best, _ = _raise(lite0, make_param("cppn", 64), "adam", 6, lr=0.005)
    assert best > start


def test_cppn_follows_lucids_construction():
    p = CPPNParam(16)
    assert p.dim == (2 * 24 + 24) + 7 * (48 * 24 + 24) + (48 * 3 + 3)  # 8 layers of 24, composite doubles
    z = p.init(2, torch.Generator().manual_seed(0))
    out_w = z[:, p.offsets[-1] : p.offsets[-1] + 48 * 3]
    assert torch.equal(out_w, torch.zeros_like(out_w))  # Lucid zeroes the output layer: a flat start
    assert float(p.coords.min()) == pytest.approx(-(3**0.5)) and float(p.coords.max()) == pytest.approx(3**0.5)
    assert p(z).shape == (2, 3, 16, 16)
    assert CPPNParam((12, 20), channels=1)(CPPNParam((12, 20), channels=1).init(1, torch.Generator())).shape == (
        1,
        1,
        12,
        20,
    )


@pytest.mark.slow  # torch.export takes seconds
def test_an_exported_generator_gives_the_same_images_as_the_module(tmp_path):
    import tiny_generator  # noqa: F401  (tests/ is on the path under pytest)
    from tiny_generator import make

    net = make(size=(32, 32), channels=3, dim=12).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.randn(2, 12),), dynamic_shapes=({0: batch},))
    path = tmp_path / "gen.pt2"
    torch.export.save(program, str(path))
    exported = make_param(f"generator:{path},dim=12", 32)
    module = make_param(f"generator:{TINY}:make", 32)
    z = torch.randn(3, 12)
    assert torch.allclose(exported(z), module(z), atol=1e-6)


@pytest.mark.parametrize(
    "factory, message",
    [
        ("not_an_image,dim=12", r"returned torch.float32 \(2, 10\) for 2 latents; an image batch \(2, 3, 64, 64\)"),
        ("fixed_size", r"an image batch \(2, 3, 64, 64\) \(N, C, H, W\) is needed"),
        ("out_of_range", r"outside its declared range \[0, 1\]"),
        ("not_a_module", "returned str, not a torch.nn.Module"),
        ("raises", "raised RuntimeError: weights file missing"),
        ("nope", "has no function 'nope': it defines"),
    ],
)
def test_a_bad_generator_is_one_line_and_exit_code_2_before_any_model_pass(
    factory, message, tmp_path, capsys, monkeypatch
):
    import fvopt.problem

    monkeypatch.setattr(fvopt.problem.Problem, "evaluate", lambda *a, **k: pytest.fail("a model pass ran"))
    code = main(
        [
            "viz",
            "--param",
            f"generator:{TINY}:{factory}",
            "--optimizer",
            "cmaes",
            "--size",
            "64",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "g.png"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert pytest.importorskip("re").search(message, err), err


@pytest.mark.parametrize(
    "spec, message",
    [
        ("generator:missing.py:make", "generator file 'missing.py' does not exist"),
        ("generator:missing.pt2", "generator file 'missing.pt2' does not exist"),
        ("generator", "generator needs a source"),
        ("generator:gen.txt", "source='gen.txt' is not allowed: must be FILE.py:FACTORY"),
        (f"generator:{TINY}:make,output=zzz", "output='zzz' is not allowed"),
    ],
)
def test_bad_generator_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(FvoptError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        make_param(spec, 32)
    assert "\n" not in str(err.value)


def test_a_generator_without_a_known_latent_size_is_refused(tmp_path):
    source = tmp_path / "g.py"
    source.write_text(
        "import torch\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(4, 3 * 8 * 8), "
        "torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, 8, 8)))\n"
    )
    with pytest.raises(FvoptError, match="latent size is unknown; give it as generator:.*,dim=N"):
        make_param(f"generator:{source}:make", 8)
    assert make_param(f"generator:{source}:make,dim=4", 8).dim == 4
