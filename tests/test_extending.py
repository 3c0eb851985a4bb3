"""The README's "Adding an optimizer, a parameterization or a target" examples, run through the
conformance checks: the documentation cannot rot, and it shows a newcomer that one file is enough."""
import re
from pathlib import Path

import pytest
import torch

import test_conformance_params as check_param
import test_conformance_strategies as check_strategy
from fvopt import visualize
from fvopt.errors import FvoptError
from fvopt.objectives import TARGETS
from fvopt.params import PARAMS
from fvopt.strategies import REGISTRY, make_strategy
from tiny import tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Adding an optimizer"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def registered():
    """Run the README's three examples; take their registrations back afterwards."""
    saved = dict(REGISTRY), dict(PARAMS), dict(TARGETS)
    examples = readme_examples()
    assert len(examples) == 3
    for code in examples:
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    yield
    for registry, before in zip((REGISTRY, PARAMS, TARGETS), saved):
        registry.clear()
        registry.update(before)


def test_the_examples_register_an_optimizer_a_parameterization_and_a_target(registered):
    assert "one-plus-lambda" in REGISTRY and "gray" in PARAMS and "saturation" in TARGETS


@pytest.mark.parametrize("check, args", [
    ("test_strategy_raises_the_activation", ()),
    ("test_budgets_are_never_exceeded_and_the_trace_matches_the_meter", ("forwards", 97)),
    ("test_budgets_are_never_exceeded_and_the_trace_matches_the_meter", ("seconds", 0.3)),
    ("test_best_has_the_right_shape_is_finite_and_on_the_problems_device", ()),
    ("test_the_same_seed_gives_the_same_result", ()),
    ("test_a_reused_problem_leaks_nothing_from_the_previous_run", ()),
    ("test_a_nan_objective_stops_the_run_and_keeps_the_best_image", ()),
    ("test_ctrl_c_keeps_the_best_point_seen", ()),
    ("test_a_budget_too_small_for_one_step_is_refused_up_front", ()),
])
def test_the_example_optimizer_passes_the_strategy_checks(registered, check, args):
    getattr(check_strategy, check)(tiny_model(), "one-plus-lambda", *args)


def test_the_example_optimizer_refuses_bad_options(registered):
    check_strategy.test_wrongly_typed_and_unknown_options_raise_fvopt_error("one-plus-lambda")


@pytest.mark.parametrize("spec", ["gray", "gray:k=8"])
def test_the_example_parameterization_passes_the_param_checks(registered, spec):
    check_param.test_images_are_in_0_1_with_the_right_shape_and_gradients_flow(spec)
    check_param.test_init_is_reproducible_from_the_generator(spec)
    check_param.test_the_reduced_form_lifts_exactly_into_the_full_one(spec)


def test_the_three_work_together_in_visualize(registered):
    vis = visualize(tiny_model(), "channel:conv2:3+0.2*saturation", "gray", "one-plus-lambda", steps=3, size=96,
                    options={"popsize": 4}, progress=False)
    assert vis.trace["param"] == "gray:k=16" and vis.trace["backwards"] == 0 and vis.trace["forwards"] == 12
    assert torch.allclose(vis.images[:, 0], vis.images[:, 2])  # gray
    with pytest.raises(FvoptError, match="popsize='abc' is not allowed"):
        make_strategy("one-plus-lambda", popsize="abc")
