"""fvopt.testing.check_strategy over every registered strategy, one test per (strategy, check).

The checks ship in the package (fvopt/testing.py), so a plugin author runs the same ones; a
strategy added to the registry (`fvopt.strategies.register`, or a `fvopt.strategies` entry
point) is checked here without editing this file, as scikit-learn's `check_estimator` checks
every estimator. A sample of nevergrad's optimizers (NGOpt included, long enough for its inner CMA
to finish generations), of torch.optim's (`torch:<Name>`) and hybrids of each family are checked
too. Everything runs on a tiny random CNN (fvopt.testing.tiny_model) in seconds.
"""

import pytest

from fvopt.problem import Budget
from fvopt.run import run
from fvopt.strategies import REGISTRY, make_strategy
from fvopt.testing import STRATEGY_CHECKS, problem_for, tiny_model

NEVERGRAD_SAMPLE = [
    "ng:NGOpt",
    "ng:CMA",
    "ng:TwoPointsDE",
    "ng:PSO",
    "ng:OnePlusOne",
    "ng:DiagonalCMA",
    "ng:RandomSearch",
]
TORCH_SAMPLE = ["torch:RMSprop", "torch:NAdam"]  # any torch.optim class by name (fvopt/strategies/torch_optim.py)
HYBRIDS = [
    "hybrid:cmaes>adam",
    "hybrid:ga>lbfgs",
    "hybrid:ng:NGOpt>adam",
    "hybrid:adam>sgd",
    "hybrid:cmaes>torch:NAdam",
]
REGISTERED = [example for name in sorted(REGISTRY) for example in REGISTRY[name].examples]
ALL = REGISTERED + NEVERGRAD_SAMPLE + TORCH_SAMPLE + HYBRIDS


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.mark.parametrize("check", STRATEGY_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", ALL)
def test_shipped_strategy_check(tiny, name, check):
    check(name, tiny)


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
