"""Strategies on the real pretrained Lite0: activation rises, exact budget accounting, hybrids, L-BFGS draws.

The contract every strategy keeps is checked over the whole registry on a tiny network in
tests/test_conformance_strategies.py; these tests check the same strategies on a real network.
"""

import pytest
import torch

from fvopt.errors import FvoptError
from fvopt.evaluate import score_images
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import REGISTRY, make_strategy, known_strategies
from fvopt.testing import timed_on_a_busy_machine
from fvopt.transforms import make_transforms

TARGET = "channel:blocks.4:7"
ALL = sorted(REGISTRY) + ["ng:TwoPointsDE", "hybrid:cmaes>adam", "hybrid:ga>lbfgs"]


def make_problem(model, strategy, seed=0, transforms="none", target=TARGET, size=64, param=None):
    param = make_param(param or ("fft:k=4" if strategy.prefers_low_dim else "fft"), size)
    return Problem(model, parse_target(target), param, make_transforms(transforms), seed=seed)


def test_registry_covers_every_family():
    assert {"sgd", "momentum", "adam", "normalized", "lbfgs", "cmaes", "sep-cmaes", "ga", "guided-es"} <= set(REGISTRY)
    assert "ng:<Name>" in known_strategies() and "hybrid:A>B" in known_strategies()


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_strategy_raises_the_activation(lite0, name):
    strategy = make_strategy(name)
    problem = make_problem(lite0, strategy)
    z0 = problem.init()
    objective = problem.objective
    start = float(score_images(lite0, objective, problem.images(z0))["value"])
    # 120 passes: the smallest gain measured over ALL was +7.6 (cmaes), the largest +50 (normalized)
    result = run(problem, strategy, Budget(passes=120), z0=z0)
    end = float(score_images(lite0, objective, result.images)["value"])
    assert end > start + 5.0, f"{name}: {start:.2f} -> {end:.2f}"
    assert result.passes <= 120


def test_cmaes_budget_accounting_is_exact(lite0):
    strategy = make_strategy("cmaes", popsize=12)
    result = run(make_problem(lite0, strategy), strategy, Budget(steps=5))
    assert (result.forwards, result.backwards, result.steps) == (60, 0, 5)
    assert [r["forwards"] for r in result.trace] == [12, 24, 36, 48, 60]


def test_adam_budget_accounting_is_exact(lite0):
    strategy = make_strategy("adam")
    result = run(make_problem(lite0, strategy), strategy, Budget(steps=5))
    assert (result.forwards, result.backwards, result.passes) == (5, 5, 15)


def test_a_batch_counts_one_pass_per_image(lite0):
    strategy = make_strategy("adam")
    problem = make_problem(lite0, strategy, target="channel:blocks.4:0-3")
    result = run(problem, strategy, Budget(steps=3))
    assert (result.forwards, result.backwards) == (12, 12)


def test_pass_budget_is_never_exceeded_even_inside_an_lbfgs_line_search(lite0):
    strategy = make_strategy("lbfgs")
    result = run(make_problem(lite0, strategy), strategy, Budget(forwards=7))
    assert result.forwards == 7 and result.stop_reason == "forwards"
    assert torch.isfinite(result.z).all()


def test_seconds_budget_stops_within_one_iteration(lite0):
    strategy = make_strategy("cmaes", popsize=8)
    problem = make_problem(lite0, strategy)
    with timed_on_a_busy_machine() as watch:
        result = run(problem, strategy, Budget(seconds=1.0), on_step=watch.on_step)
    ends = [0.0] + [row["time_s"] for row in result.trace]
    assert result.stop_reason == "seconds"
    # no step starts after the budget ran out (each step starts where the previous one ended), the
    # run stops because the time is up, right after its last step (measured gaps: robust to a
    # machine slowed by other work; a trace row is stamped just before the loop's own time check),
    # give or take the time other jobs held the CPU (fvopt.testing.timed_on_a_busy_machine)
    assert ends[-2] < 1.0 <= result.seconds < ends[-1] + 0.2 + watch.waited, watch.waited


def test_hybrid_switches_and_lifts_exactly(lite0):
    strategy = make_strategy("hybrid:cmaes>adam", switch=0.5)
    problem = make_problem(lite0, strategy, param="fft")
    result = run(problem, strategy, Budget(steps=10))
    assert strategy.switched_at == 5 and result.extra["switched_at_step"] == 5
    assert strategy.low.param.name == "fft:k=8" and problem.param.name == "fft"
    low_best = strategy.first.best
    assert torch.allclose(problem.param(strategy.low.param.lift(low_best)), strategy.low.param(low_best), atol=1e-6)
    assert result.forwards > 5 and result.backwards == 5


def test_lbfgs_keeps_one_transform_draw_per_step(lite0):
    problem = make_problem(lite0, make_strategy("lbfgs"), transforms="default")
    draws = []
    original = problem.transforms.apply
    problem.transforms = type(
        "Spy",
        (),
        {
            "apply": lambda self, x, d: (draws.append(d), original(x, d))[1],
            "sample": lambda self, g: problem.transforms_sample(g),
        },
    )()
    problem.transforms_sample = make_transforms("default").sample
    strategy = make_strategy("lbfgs", max_iter=5)
    run(problem, strategy, Budget(steps=1))
    assert len(draws) > 1 and all(d == draws[0] for d in draws)


def test_population_shares_one_draw(lite0):
    problem = make_problem(lite0, make_strategy("cmaes"), transforms="default")
    z = problem.init()
    Z = z[None].repeat(6, 1, 1)
    values = problem.evaluate(Z)
    assert torch.allclose(values, values[:1].expand_as(values))


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("adamw", {}, "unknown optimizer 'adamw'.*Did you mean: adam.*ng:<Name>|unknown optimizer 'adamw'.*ng:"),
        ("cmaes", {"popsize": 1}, r"popsize=1 is not allowed: must be an integer in \[2, 100000\]"),
        ("ga", {"popsize": 1}, "popsize=1 is not allowed"),
        ("ga", {"popsize": 4, "elite": 4}, "elite must be in 0..3"),
        ("hybrid:cmaes>adamx", {}, "unknown part"),
        ("hybrid:cmaes", {}, "must name two strategies"),
        ("ng:NoSuchOptimizer", {}, "unknown nevergrad optimizer"),
        ("adam", {"popsize": 4}, "does not take option 'popsize'.*It takes: lr"),
        ("adam", {"_kind": "sgd"}, "does not take option '_kind'"),
        ("cmaes", {"popsize": "abc"}, "popsize='abc' is not allowed"),
        ("lbfgs", {"max_iter": "x"}, "max_iter='x' is not allowed"),
        ("momentum", {"momentum": float("nan")}, "momentum=nan is not allowed"),
        ("sgd", {"blur_sigma": 0}, "blur_sigma=0 is not allowed"),
        ("sgd", {"lr": float("inf")}, "lr=inf is not allowed"),
        ("hybrid:cmaes>adam", {"switch": 1.5}, r"switch=1.5 is not allowed: must be a number in \(0, 1\)"),
    ],
)
def test_bad_strategy_specs(spec, options, message):
    with pytest.raises(FvoptError, match=message):
        make_strategy(spec, **options)


def test_full_cmaes_refuses_huge_dimensions(lite0):
    strategy = make_strategy("cmaes")
    problem = make_problem(lite0, strategy, param="fft")
    with pytest.raises(FvoptError, match="sep-cmaes"):
        strategy.start(problem, problem.init())


def test_nevergrad_reports_what_really_ran(lite0):
    strategy = make_strategy("ng:NGOpt", popsize=4)
    result = run(make_problem(lite0, strategy), strategy, Budget(steps=2))
    assert result.extra["selected"].startswith("NGOpt -> ")


def test_option_text_from_the_command_line_is_typed_in_one_place():
    assert make_strategy("cmaes", popsize="40").options == {"popsize": 40}
    assert make_strategy("momentum", nesterov="true", lr="0.1").options == {"nesterov": True, "lr": 0.1}


def test_a_hybrid_whose_second_part_cannot_search_the_space_is_refused_before_any_pass(lite0):
    strategy = make_strategy("hybrid:adam>cmaes")
    problem = make_problem(lite0, strategy, param="fft")
    with pytest.raises(FvoptError, match="second part cmaes would continue in fft .*cannot"):
        run(problem, strategy, Budget(steps=10))
    assert problem.meter.forwards == 0
    # in a space the second part can search, the same hybrid runs and switches
    strategy = make_strategy("hybrid:adam>cmaes", switch=0.5)
    result = run(make_problem(lite0, strategy, param="fft:k=4"), strategy, Budget(steps=4))
    assert result.extra["switched_at_step"] == 2 and result.extra["parts"][1]["popsize"] > 0


def test_lbfgs_after_adam_on_the_same_problem_returns_its_own_point(lite0):
    adam, lbfgs = make_strategy("adam", lr=0.5), make_strategy("lbfgs", max_iter=2)
    problem = make_problem(lite0, adam)
    adam_result = run(problem, adam, Budget(steps=10))
    lbfgs_result = run(problem, lbfgs, Budget(forwards=2))
    fresh = make_strategy("lbfgs", max_iter=2)
    alone = run(make_problem(lite0, fresh), fresh, Budget(forwards=2))
    assert torch.equal(lbfgs_result.z, alone.z) and not torch.equal(lbfgs_result.z, adam_result.z)


def test_guided_es_reports_the_backward_passes_it_spends(lite0):
    strategy = make_strategy("guided-es", popsize=4)
    assert strategy.uses_gradients and strategy.prefers_low_dim
    result = run(make_problem(lite0, strategy), strategy, Budget(steps=3))
    assert (result.forwards, result.backwards) == (3 * (1 + 4), 3)


@pytest.mark.parametrize(
    "name, budget, minimum",
    [("cmaes", {"passes": 1}, "at least 20 passes"), ("ga", {"forwards": 3}, "at least 20 forwards")],
)
def test_a_budget_too_small_for_one_step_is_refused_naming_the_minimum(lite0, name, budget, minimum):
    strategy = make_strategy(name)
    problem = make_problem(lite0, strategy)
    with pytest.raises(FvoptError, match=minimum):
        run(problem, strategy, Budget(**budget))
