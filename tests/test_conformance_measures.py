"""fvopt.testing.check_measure over every registered quality measure, one test per (measure, check).

The checks ship in the package (fvopt/testing.py), so a plugin author runs the same ones; a measure
added to the registry (`fvopt.quality.register_measure`, or a `fvopt.measures` entry point) is
checked here without editing this file. Everything runs on two tiny random CNNs (the optimized one
and the judge) and a small synthetic reference set.
"""

import pytest
import torch

from fvopt.errors import FvoptError
from fvopt.quality import MEASURES, judge, plan
from fvopt.quality.measures import Scored
from fvopt.quality.registry import Needs, Output, measures_help, register_measure
from fvopt.testing import MEASURE_CHECKS, check_measure, tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("measures")


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.mark.parametrize("check", MEASURE_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", list(MEASURES))
def test_shipped_measure_check(tiny, folder, name, check):
    check(name, tiny, folder)


def test_every_measure_name_is_one_registration_read_by_the_plan_and_the_help():
    names = list(MEASURES)
    assert names[:6] == ["natural_ratio", "plausibility", "mis", "transfer", "spectral_slope", "diversity"]
    assert all(name in measures_help() for name in names)
    wanted, absent, _ = plan("class:1", 2, True, "default")
    assert set(wanted) | set(absent) == set(names)


@pytest.fixture
def registered():
    """A measure registered for one test (fvopt's own source: it is removed after)."""
    added = []

    def add(name, needs, outputs, compute):
        register_measure(name, f"{name} for a test", needs, outputs)(compute)
        added.append(name)

    yield add
    for name in added:
        del MEASURES[name]


def test_a_new_measure_is_one_registration_and_judge_computes_it(registered, tiny):
    def brightness(ctx):
        values = ctx.images.mean((1, 2, 3)).tolist()
        controls = {c: ctx.controls[c].mean((1, 2, 3)).tolist() for c in ctx.controls}
        return [Scored("brightness", values, [None] * len(values), controls)]

    registered("brightness", Needs(rgb=False), (Output("brightness", baselines=("gray",)),), brightness)
    images = torch.full((2, 3, 32, 32), 0.8)
    row = judge(images, "channel:act2:1,2", tiny, measures=["brightness"])
    assert row["measures"] == ["brightness"] and row["brightness"] == pytest.approx(0.8)
    assert row["brightness_gray"] == pytest.approx(0.5) and row["brightness_informative"] is True
    assert row["per_image"]["brightness"] == pytest.approx([0.8, 0.8])
    assert check_measure("brightness", tiny) == [c.__name__ for c in MEASURE_CHECKS]


def test_a_measure_that_returns_what_it_did_not_declare_is_refused(registered, tiny):
    registered("liar", Needs(rgb=False), None, lambda ctx: [Scored("other", [1.0], [None])])
    with pytest.raises(FvoptError, match="measure liar returned 'other'; it declares liar"):
        judge(torch.rand(1, 3, 32, 32), "channel:act2:1", tiny, measures=["liar"])


def test_a_registration_that_breaks_the_declaration_rules_is_refused():
    with pytest.raises(FvoptError, match="first output must be named 'x'"):
        register_measure("x", "help", Needs(), (Output("y"),))
    with pytest.raises(FvoptError, match="unknown control 'grey'"):
        register_measure("x", "help", Needs(), (Output("x", baselines=("grey",)),))
    with pytest.raises(FvoptError, match="keyword of --measures"):
        register_measure("all", "help")
    assert "x" not in MEASURES and "all" not in MEASURES


def test_the_shipped_check_catches_a_measure_that_ignores_its_declared_need(registered, tiny, folder):
    """A measure declared without a reference need that reads the reference anyway fails without one."""

    def reads_reference(ctx):
        n = len(ctx.ref)  # TypeError without a reference: the need was not declared
        return [Scored("sneaky", [float(n)] * ctx.n, [None] * ctx.n, {})]

    registered("sneaky", Needs(rgb=False), (Output("sneaky", baselines=()),), reads_reference)
    from fvopt.testing import ConformanceError, check_measure_needs_are_honoured

    with pytest.raises(ConformanceError, match="sneaky: declares no reference need, yet fails without one"):
        check_measure_needs_are_honoured("sneaky", tiny, folder)


def test_transfer_has_one_definition_read_by_the_bench_and_by_judge(tiny):
    """evaluate.quality_measures (a bench cell's transfer_prob) and the transfer measure read the same
    function, so one network gives one number in both places."""
    from fvopt.evaluate import quality_measures, target_class_probability
    from fvopt.objectives import parse_target
    from fvopt.testing import tiny_judge

    other = tiny_judge()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    row = judge(images, "class:1,3,5", tiny, measures=["transfer"], transfer=[other])
    cell = quality_measures(images, parse_target("class:1,3,5"), other)
    assert row["transfer_prob_tiny-judge"] == cell["transfer_prob"]
    assert row["transfer"] == pytest.approx(cell["transfer_prob"], rel=1e-6)  # one network: its mean, in float64
    p, rank = target_class_probability(other, images, [1, 3, 5])
    probs = other(images).softmax(-1).detach()
    assert torch.allclose(p, probs[torch.arange(3), torch.tensor([1, 3, 5])], atol=1e-6)
    assert rank.tolist() == [int((probs[i] > probs[i, c]).sum()) + 1 for i, c in enumerate([1, 3, 5])]
