"""fvopt.testing.check_transform over every registered transform part and named set.

A part added with `register_transform` (or a `fvopt.transforms` entry point) is checked here
through the example chains it registers, without editing this file.
"""

import pytest

from fvopt.testing import TRANSFORM_CHECKS
from fvopt.transforms import TRANSFORM_PARTS, TRANSFORM_SETS

EXAMPLES = (
    [spec for name in TRANSFORM_PARTS for spec in TRANSFORM_PARTS[name].examples]
    + list(TRANSFORM_SETS)
    + ["default,noise:0.02,per-image", "jitter:4,crops:3@0.3-0.1,per-image"]
)


@pytest.mark.parametrize("check", TRANSFORM_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("spec", EXAMPLES)
def test_shipped_transform_check(spec, check):
    check(spec)
