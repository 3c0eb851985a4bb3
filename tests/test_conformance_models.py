"""fvopt.testing.check_model_source over every registered model source, with random weights.

Each exact name (the Lites) and each family's example (`torchvision:resnet18`, `timm:resnet18`)
is loaded and checked: a FeatureModel in eval mode, finite scores with gradients, readable layers
and no hook left after a run. A source added by a `fvopt.models` entry point is checked too.
"""
import pytest

from fvopt.models.loading import MODEL_SOURCES
from fvopt.testing import MODEL_SOURCE_CHECKS

EXAMPLES = ([name for name in MODEL_SOURCES] +
            [family.examples[0] for family in MODEL_SOURCES.families.values()])


@pytest.mark.slow
@pytest.mark.parametrize("check", MODEL_SOURCE_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_model_source_check(name, check):
    check(name, "random")
