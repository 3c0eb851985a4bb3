"""A tiny random CNN that runs a conformance check in milliseconds, with named layers like a real net.

The network is fvopt.testing's (shipped for plugin authors); this module keeps the tests' old import.
"""

from __future__ import annotations

import torch

from fvopt.models import FeatureModel
from fvopt.testing import TinyNet

__all__ = ["TinyNet", "tiny_model"]


def tiny_model() -> FeatureModel:
    torch.manual_seed(0)  # kept as it was: tests written against this module start from this seed
    return FeatureModel(TinyNet(), "tiny", input_size=32, min_size=8, weights="random")
