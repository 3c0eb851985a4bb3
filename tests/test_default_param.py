"""The default parameterization is written once (fvopt.params.DEFAULT_PARAM): a bench spec without
`params`, the atlas and the shipped checks all read it."""

import inspect

from fvopt.atlases.api import atlas
from fvopt.atlases.plan import Settings
from fvopt.bench.spec import parse_spec
from fvopt.params import DEFAULT_PARAM, PARAMS, make_param
from fvopt.testing import problem_for


def test_every_place_that_defaults_a_parameterization_defaults_to_the_one_constant():
    assert DEFAULT_PARAM in PARAMS and make_param(DEFAULT_PARAM, 32).name == DEFAULT_PARAM
    spec = parse_spec({"bench": {"budget": {"passes": 10}, "targets": ["class:1"]}, "strategies": [{"name": "adam"}]})
    assert {cell.param for cell in spec.cells} == {DEFAULT_PARAM}
    assert inspect.signature(atlas).parameters["param"].default == DEFAULT_PARAM
    assert Settings(model="lite0").param == DEFAULT_PARAM
    assert inspect.signature(problem_for).parameters["param"].default == DEFAULT_PARAM
