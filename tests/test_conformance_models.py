"""fvopt.testing.check_model_source over every registered model source, with random weights.

Each exact name (the Lites) and each family's example (`torchvision:resnet18`, `timm:resnet18`)
is loaded and checked: a FeatureModel in eval mode, finite scores with gradients, readable layers
and no hook left after a run. A source added by a `fvopt.models` entry point is checked too.
"""

import pytest

from fvopt.models import load_model
from fvopt.models.loading import MODEL_SOURCES
from fvopt.testing import MODEL_SOURCE_CHECKS

EXAMPLES = [name for name in MODEL_SOURCES] + [family.examples[0] for family in MODEL_SOURCES.families.values()]


_LOADED = {}


def loaded(name):
    """Each example loaded once for all its checks (the first check also loads it by name itself)."""
    if name not in _LOADED:
        _LOADED.clear()  # one network in memory at a time
        _LOADED[name] = load_model(name, weights="random")
    return _LOADED[name]


@pytest.mark.slow
@pytest.mark.parametrize("check", MODEL_SOURCE_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_model_source_check(name, check):
    check(name if check is MODEL_SOURCE_CHECKS[0] else loaded(name), "random")
