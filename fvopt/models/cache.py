"""Networks loaded once per process.

A bench, a rescore or an atlas judges hundreds of cells with the same few networks (the cell's own,
its judge, its transfer networks), and loading one costs seconds; a worker process loads each once.
"""

from __future__ import annotations

import torch

from .loading import load_model
from .wrapper import FeatureModel

_LOADED: dict[tuple[str, str, str], FeatureModel] = {}


def cached_model(name: str, device: str | torch.device = "cpu", preprocessing: dict | None = None) -> FeatureModel:
    """`load_model(name, device=device, **preprocessing)`, loaded at the first call of this process and
    shared after (one network per name, device and preprocessing: a bench spec's [bench.input])."""
    key = (name, str(device), repr(sorted((preprocessing or {}).items())))
    if key not in _LOADED:
        _LOADED[key] = load_model(name, device=str(device), **(preprocessing or {}))
    return _LOADED[key]
