"""`torch:<Name>`: any torch.optim optimizer by name, and `result=best|last` for gradient strategies.

The conformance suite (tests/test_conformance_strategies.py) runs its whole contract over a sample
(torch:RMSprop, torch:NAdam, hybrid:cmaes>torch:NAdam); this file checks what is particular to
the family: options read from torch's constructors, the equality with fvopt's own SGD, the
refusals, the budget, and which point a run returns.
"""

import pytest
import torch

from fvopt.bench.spec import parse_spec
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.objectives import Objective, parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.strategies.base import strategy_options
from fvopt.strategies.torch_optim import usable_names
from fvopt.transforms import make_transforms
from fvopt.viz import visualize

from tiny import tiny_model

TARGET = "channel:conv2:3"
SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def problem_for(model, target=TARGET, transforms="none", seed=0, objective=None):
    return Problem(
        model, objective or parse_target(target), make_param("fft", SIZE), make_transforms(transforms), seed=seed
    )


def value_of(problem, z):
    with torch.no_grad():
        return problem.evaluate(z.to(problem.device)[None]).mean().item()


@pytest.mark.parametrize("name, lr", [("torch:NAdam", 0.05), ("torch:RMSprop", 0.01)])
def test_the_activation_rises(tiny, name, lr):
    problem = problem_for(tiny)
    z0 = problem.init()
    before = value_of(problem, z0)
    result = run(problem, make_strategy(name, lr=lr), Budget(steps=30), z0=z0)
    after = value_of(problem, result.z)
    assert after > before + 0.2 and after > 10 * before, (name, before, after)


def test_torch_sgd_is_fvopts_sgd_step_for_step(tiny):
    runs = []
    for name in ("sgd", "torch:SGD"):
        problem = problem_for(tiny, target="channel:conv2:0-2", transforms="default", seed=3)
        runs.append(run(problem, make_strategy(name, lr=0.7), Budget(steps=8)))
    ours, theirs = runs
    assert [r["value"] for r in ours.trace] == [r["value"] for r in theirs.trace]
    assert torch.equal(ours.z, theirs.z)
    assert theirs.extra["ran"] == "torch.optim.SGD" and theirs.extra["arguments"]["lr"] == 0.7


@pytest.mark.parametrize("name", usable_names())
def test_every_torch_optimizer_runs_a_step_with_its_defaults(tiny, name):
    strategy = make_strategy(f"torch:{name}")
    problem = problem_for(tiny)
    result = run(problem, strategy, Budget(steps=2))
    assert result.steps == 2 and torch.isfinite(result.z).all()
    assert result.extra["ran"] == f"torch.optim.{name}" and result.extra["result"] == "last"


def test_options_come_from_the_constructor_with_types_and_ranges():
    options = strategy_options("torch:NAdam")
    assert set(options) == {"lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "result"}
    assert options["betas"].allowed() == "2 numbers separated by commas, each in [0, 1)"
    assert options["decoupled_weight_decay"].kind is bool and options["weight_decay"].kind is float
    assert not {"maximize", "foreach", "fused", "capturable", "differentiable"} & set(strategy_options("torch:Adam"))
    for text in ("0.8,0.99", " (0.8, 0.99) ", [0.8, 0.99]):  # CLI text, spec list
        strategy = make_strategy("torch:NAdam", betas=text, lr="0.5", decoupled_weight_decay="true")
        assert strategy.arguments["betas"] == (0.8, 0.99) and strategy.arguments["lr"] == 0.5
        assert strategy.arguments["decoupled_weight_decay"] is True


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("torch:NAdam", {"betas": "0.9"}, "option betas='0.9' is not allowed: must be 2 numbers separated by commas"),
        (
            "torch:NAdam",
            {"betas": "0.9,1"},
            "betas='0.9,1' is not allowed: must be 2 numbers separated by commas, each in [0, 1)",
        ),
        ("torch:NAdam", {"betas": "a,b"}, "betas='a,b' is not allowed"),
        ("torch:RMSprop", {"lr": "-1"}, "option lr='-1' is not allowed: must be a number > 0"),
        ("torch:RMSprop", {"centered": "maybe"}, "centered='maybe' is not allowed: must be true or false"),
        ("torch:Adam", {"maximize": "true"}, "does not take option 'maximize'"),
        ("torch:Adam", {"beta": "0.9,0.9"}, "does not take option 'beta'. Did you mean: betas?"),
        (
            "torch:Adafactor",
            {"beta2_decay": 0.5},
            "optimizer 'torch:Adafactor' refuses beta2_decay=0.5: beta2_decay should be <= 0",
        ),
        ("torch:LBFGS", {}, "needs a closure that evaluates several times per step: use the optimizer 'lbfgs'"),
        ("torch:SparseAdam", {}, "sparse gradients only"),
        ("torch:Nadam", {}, "unknown torch optimizer 'torch:Nadam'. Did you mean: torch:NAdam"),
        ("nadam", {}, "unknown optimizer 'nadam'. Did you mean: torch:NAdam?"),
        ("torch:NAdam", {"result": "middle"}, "result='middle' is not allowed: must be one of last, best"),
        (
            "ga",
            {"result": "recommend"},
            "result='recommend' is not allowed: must be one of last, best",
        ),  # issue 22: every
        (
            "ng:NGOpt",
            {"result": "last"},
            "result='last' is not allowed: must be one of recommend, best",
        ),  # strategy has result
        ("hybrid:cmaes>torch:Nadam", {}, "unknown torch optimizer 'torch:Nadam'"),
    ],
)
def test_bad_names_and_options_are_refused_in_one_line(name, options, message):
    with pytest.raises(FvoptError) as err:
        make_strategy(name, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_update_that_mixes_images_is_refused_for_a_batch(tiny):
    strategy = make_strategy("torch:Adafactor")
    with pytest.raises(FvoptError, match="3 images would steer each other: run one image"):
        run(problem_for(tiny, target="channel:conv2:0-2"), strategy, Budget(steps=2))
    assert run(problem_for(tiny), strategy, Budget(steps=2)).steps == 2


@pytest.mark.parametrize("budget, steps", [(Budget(passes=35), 3), (Budget(forwards=8), 2), (Budget(steps=4), 4)])
def test_budget_accounting_is_exact(tiny, budget, steps):
    """3 images: each step is one value_and_grad, 3 forwards and 3 backwards (9 passes), never more."""
    problem = problem_for(tiny, target="channel:conv2:0-2")
    result = run(problem, make_strategy("torch:RMSprop"), budget)
    assert (result.steps, result.forwards, result.backwards, result.passes) == (steps, 3 * steps, 3 * steps, 9 * steps)
    assert [(r["forwards"], r["backwards"]) for r in result.trace] == [(3 * i, 3 * i) for i in range(1, steps + 1)]


def objective_turned_after(calls: int) -> Objective:
    """The target's value for `calls` evaluations, then its negative: ascent then goes back down, so
    the best evaluated point is an early iterate and the last one is worse."""
    base = parse_target(TARGET)
    seen = {"n": 0}

    def fn(a):
        seen["n"] += 1
        values = base(a)
        return values if seen["n"] <= calls else -values

    return Objective(fn, base.layers, f"turned after {calls}", checks=base.checks)


@pytest.mark.parametrize("name", ["torch:NAdam", "adam"])
def test_result_last_or_best_and_the_trace_says_which(tiny, name):
    out = {}
    for result in ("last", "best"):
        problem = problem_for(tiny, objective=objective_turned_after(10))
        strategy = make_strategy(name, lr=0.2, result=result)
        out[result] = run(problem, strategy, Budget(steps=20))
        assert out[result].extra["result"] == result
        if result == "best":
            assert torch.equal(out[result].z, problem.best_z)
        else:
            assert torch.equal(out[result].z, strategy.z.detach())
    judge = problem_for(tiny)
    best, last = value_of(judge, out["best"].z), value_of(judge, out["last"].z)
    assert best > last + 0.2
    assert best == pytest.approx(max(r["value"] for r in out["best"].trace), abs=1e-5)  # the 10th iterate


def test_result_defaults_to_the_last_iterate_as_before(tiny):
    strategy = make_strategy("adam")
    problem = problem_for(tiny)
    result = run(problem, strategy, Budget(steps=3))
    assert result.extra["result"] == "last" and torch.equal(result.z, strategy.z.detach())
    assert not torch.equal(result.z, problem.best_z)  # the last iterate is never evaluated


def test_result_in_a_hybrid_goes_to_the_part_that_takes_it(tiny):
    strategy = make_strategy("hybrid:cmaes>torch:NAdam", lr=0.05, result="best", popsize=4)
    problem = problem_for(tiny)
    result = run(problem, strategy, Budget(steps=6))
    second = result.extra["parts"][1]
    assert second["name"] == "torch:NAdam" and second["result"] == "best" and torch.equal(result.z, problem.best_z)


def test_python_api_trace_names_what_ran(tiny):
    viz = visualize(
        tiny,
        TARGET,
        "fft",
        "torch:NAdam",
        options={"lr": 0.5, "betas": [0.8, 0.99], "result": "best"},
        steps=3,
        size=SIZE,
    )
    t = viz.trace
    assert t["optimizer"] == "torch:NAdam" and t["ran"] == "torch.optim.NAdam" and t["result"] == "best"
    assert t["arguments"]["lr"] == 0.5 and t["arguments"]["betas"] == [0.8, 0.99] and t["arguments"]["maximize"]
    assert t["arguments"]["momentum_decay"] == 0.004  # torch's default, recorded as run


def test_bench_spec_entries_take_torch_names_and_result():
    raw = {
        "bench": {"targets": ["class:8"], "budget": {"passes": 100}},
        "strategies": [
            {"name": "torch:NAdam", "lr": 0.5, "betas": [0.8, 0.99], "result": "best"},
            {"name": "adam", "result": "last"},
        ],
    }
    assert len(parse_spec(raw).cells) == 2
    raw["strategies"] = [{"name": "ga", "result": "recommend"}]  # issue 22: ga has last and best
    with pytest.raises(
        FvoptError, match=r"spec strategies\[0\]: optimizer 'ga' option result='recommend' is not allowed"
    ):
        parse_spec(raw)


def test_fvopt_optimizers_lists_each_torch_optimizer_with_its_options(capsys):
    assert main(["optimizers"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "betas (2 numbers separated by commas, each in [0, 1))" in lines["torch:NAdam"]
    assert "result (one of last, best)" in lines["torch:RMSprop"] and "result (one of last, best)" in lines["adam"]
    assert "torch:<Name>" in lines and "torch:LBFGS" not in lines and "torch:SparseAdam" not in lines


def test_cli_refuses_a_bad_torch_option_in_one_line(capsys):
    assert main(["viz", "--optimizer", "torch:NAdam", "--option", "betas=0.9", "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "betas='0.9' is not allowed" in err and len(err.splitlines()) == 1
