"""check_strategy: the contract every registered strategy keeps, run over the whole registry.

A strategy added to the registry (`fvopt.strategies.register`) is checked here without editing
this file, as scikit-learn's `check_estimator` checks every estimator. A sample of nevergrad's
optimizers (NGOpt included, long enough for its inner CMA to finish generations), of torch.optim's
(`torch:<Name>`) and hybrids of each family are checked too. Everything runs on a tiny random CNN
(tests/tiny.py) in seconds.
"""
import pytest
import torch

from fvopt.errors import FvoptError
from fvopt.objectives import Objective, parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import INTERRUPTED, run
from fvopt.strategies import REGISTRY, make_strategy
from fvopt.strategies.base import search_space, strategy_options
from fvopt.transforms import make_transforms

from tiny import tiny_model

NEVERGRAD_SAMPLE = ["ng:NGOpt", "ng:CMA", "ng:TwoPointsDE", "ng:PSO", "ng:OnePlusOne", "ng:DiagonalCMA",
                    "ng:RandomSearch"]
TORCH_SAMPLE = ["torch:RMSprop", "torch:NAdam"]  # any torch.optim class by name (fvopt/strategies/torch_optim.py)
HYBRIDS = ["hybrid:cmaes>adam", "hybrid:ga>lbfgs", "hybrid:ng:NGOpt>adam", "hybrid:adam>sgd", "hybrid:cmaes>torch:NAdam"]
ALL = sorted(REGISTRY) + NEVERGRAD_SAMPLE + TORCH_SAMPLE + HYBRIDS
TARGET = "channel:conv2:3"
SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def problem_for(model, strategy, target=TARGET, param="fft", transforms="none", seed=0, objective=None):
    space = search_space(strategy, make_param(param, SIZE))
    return Problem(model, objective or parse_target(target), space, make_transforms(transforms), seed=seed)


def value_of(problem, z):
    with torch.no_grad():
        return problem.evaluate(z.to(problem.device)).mean().item()


@pytest.mark.parametrize("name", ALL)
def test_strategy_raises_the_activation(tiny, name):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy)
    z0 = problem.init()
    result = run(problem, strategy, Budget(passes=600), z0=z0)
    problem.reset()
    assert value_of(problem, result.z) > value_of(problem, z0) + 0.02, name


@pytest.mark.parametrize("kind, amount", [("steps", 4), ("forwards", 97), ("passes", 131), ("seconds", 0.3)])
@pytest.mark.parametrize("name", ALL)
def test_budgets_are_never_exceeded_and_the_trace_matches_the_meter(tiny, name, kind, amount):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy)
    cost = strategy.check(problem.param, problem.batch, Budget(**{kind: amount}))
    if kind in ("forwards", "passes") and getattr(cost, kind) > amount:
        pytest.skip(f"one step of {name} costs {cost}")
    result = run(problem, strategy, Budget(**{kind: amount}))
    spent = {"steps": result.steps, "forwards": result.forwards, "passes": result.passes}
    if kind != "seconds":
        assert spent[kind] <= amount
    else:  # no step starts after the budget ran out (gaps measured in this run: robust to a busy machine)
        ends = [0.0] + [r["time_s"] for r in result.trace]
        assert ends[-2] < amount and result.seconds < ends[-1] + 0.5
    assert result.trace, "no step was recorded"
    last = result.trace[-1]
    assert (last["forwards"], last["backwards"]) == (result.forwards, result.backwards)
    assert last["step"] == len(result.trace)
    if not strategy.uses_gradients:
        assert result.backwards == 0 and all(r["backwards"] == 0 for r in result.trace)
    elif kind != "seconds":  # a 0.3 s budget may end inside a hybrid's first, gradient-free part
        assert result.backwards > 0


@pytest.mark.parametrize("name", ALL)
def test_best_has_the_right_shape_is_finite_and_on_the_problems_device(tiny, name):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy, target="channel:conv2:0-2")
    result = run(problem, strategy, Budget(steps=3))
    assert result.z.shape == (3, problem.dim)  # a batch of 3 images, one target each
    assert torch.isfinite(result.z).all() and result.z.device == problem.device
    assert result.images.shape == (3, 3, SIZE, SIZE)
    assert strategy.best.shape == (3, problem.dim) and strategy.best.device == problem.device


@pytest.mark.parametrize("name", ALL)
def test_the_same_seed_gives_the_same_result(tiny, name):
    runs = []
    for _ in range(2):
        strategy = make_strategy(name)
        problem = problem_for(tiny, strategy, transforms="default", seed=5)
        runs.append(run(problem, strategy, Budget(steps=4)))
    assert torch.equal(runs[0].z, runs[1].z), name
    assert [r["value"] for r in runs[0].trace] == [r["value"] for r in runs[1].trace]


@pytest.mark.parametrize("name", ALL)
def test_a_reused_problem_leaks_nothing_from_the_previous_run(tiny, name):
    fresh_strategy = make_strategy(name)
    fresh = run(problem_for(tiny, fresh_strategy, transforms="default"), fresh_strategy, Budget(steps=3))
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy, transforms="default")
    # a strong earlier run on the same problem: its best point must not come back
    earlier = make_strategy("adam", lr=0.5) if problem.dim > 4096 or name.startswith("hybrid") else make_strategy(name)
    run(problem, earlier, Budget(steps=6))
    reused = run(problem, strategy, Budget(steps=3))
    assert torch.equal(reused.z, fresh.z), name
    assert [r["value"] for r in reused.trace] == [r["value"] for r in fresh.trace]


def objective_changed_after(calls: int, change) -> Objective:
    """The target's objective for `calls` calls, then `change(values)` (a NaN, or a raised Ctrl-C)."""
    base = parse_target(TARGET)
    seen = {"n": 0}

    def fn(a):
        seen["n"] += 1
        values = base(a)
        return change(values) if seen["n"] > calls else values

    return Objective(fn, base.layers, f"changed after {calls}", checks=base.checks)


def _ctrl_c(values):
    raise KeyboardInterrupt


@pytest.mark.parametrize("name", ALL)
def test_a_nan_objective_stops_the_run_and_keeps_the_best_image(tiny, name):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy, objective=objective_changed_after(3, lambda v: v * float("nan")))
    result = run(problem, strategy, Budget(steps=50))
    assert "NaN" in result.stop_reason and "kept the best" in result.stop_reason
    assert torch.isfinite(result.z).all() and torch.isfinite(result.images).all()
    assert result.steps < 50


@pytest.mark.parametrize("name", ALL)
def test_ctrl_c_keeps_the_best_point_seen(tiny, name):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy, objective=objective_changed_after(4, _ctrl_c))
    result = run(problem, strategy, Budget(steps=50))
    assert result.stop_reason == INTERRUPTED
    assert torch.isfinite(result.z).all()
    # the best point every evaluation went through, in the run's own space (hybrids lift theirs)
    assert torch.isfinite(problem.best_values).all() and torch.equal(result.z, problem.best_z)


@pytest.mark.parametrize("name", ALL)
def test_wrongly_typed_and_unknown_options_raise_fvopt_error(name):
    bad_values = {int: "abc", float: "nan", bool: "maybe", str: 3, tuple: "0.9"}
    for option, spec in strategy_options(name).items():
        with pytest.raises(FvoptError, match=option):
            make_strategy(name, **{option: bad_values[spec.kind]})
    with pytest.raises(FvoptError, match="does not take option '_kind'"):
        make_strategy(name, _kind="sgd")


@pytest.mark.parametrize("name", ALL)
def test_a_budget_too_small_for_one_step_is_refused_up_front(tiny, name):
    strategy = make_strategy(name)
    problem = problem_for(tiny, strategy)
    cost = strategy.check(problem.param, problem.batch, Budget(steps=1))
    if cost.passes < 2:
        pytest.skip("one pass is a whole step")
    problem = problem_for(tiny, strategy, objective=objective_changed_after(0, _ctrl_c))  # any pass would raise
    with pytest.raises(FvoptError, match=f"too small for one step.*at least {cost.passes} passes"):
        run(problem, strategy, Budget(passes=cost.passes - 1))
    assert problem.meter.forwards == 0


def test_status_names_what_really_ran(tiny):
    strategy = make_strategy("hybrid:ng:NGOpt>adam", switch=0.5)
    result = run(problem_for(tiny, strategy), strategy, Budget(steps=6))
    first, second = result.extra["parts"]
    assert first["name"] == "ng:NGOpt" and first["selected"].startswith("NGOpt -> ")
    assert second["name"] == "adam" and result.extra["switched_at_step"] == 3


def test_nevergrad_cma_inside_ngopt_is_told_whole_generations(tiny):
    """NGOpt picks a CMA whose population (58) exceeds the workers (24): asking 24 at a time made
    pycma fail with 'Mean shift samples are expected but missing' on its third generation."""
    strategy = make_strategy("ng:NGOpt", popsize=24)
    problem = problem_for(tiny, strategy, param="fft:k=8")
    result = run(problem, strategy, Budget(passes=1200))
    assert result.stop_reason == "passes" and result.extra["generation"] > 24
    assert result.steps >= 10
