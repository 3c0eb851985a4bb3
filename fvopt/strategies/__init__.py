"""Every optimizer behind one contract: start, step, best. See `make_strategy` for names."""

from . import evolution, first_order, guided_es, hybrid, lbfgs, torch_optim  # noqa: F401  (fill the registries)
from .base import REGISTRY, Strategy, known_strategies, make_strategy, register

__all__ = ["REGISTRY", "Strategy", "known_strategies", "make_strategy", "register"]
