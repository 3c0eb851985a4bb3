"""Model sources by name: where `load_model(name)` finds a network, as one registry.

A source is an exact name (`lite0`) or a family of names by prefix (`torchvision:`, `timm:`); each
maps (name, weights) to a FeatureModel in eval mode taking [0,1] images. The built-ins are
registered in fvopt.models.loading; another package adds its own through a `fvopt.models` entry
point, e.g. a hub of its lab's networks:

    @register_model_source("mylab-net", "our v3 classifier (weights from $MYLAB_WEIGHTS)")
    def _load(name: str, weights) -> FeatureModel: ...

    register_model_family("mylab:", _load_any, "mylab:v3", "any network of our lab by name")

`fvopt.testing.check_model_source` is the contract a source keeps (random weights at a small size).
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import Entry, Registry

ModelLoader = Callable[[str, Any], Any]  # (name, weights) -> FeatureModel

MODEL_SOURCES: Registry[ModelLoader] = Registry("model", group="fvopt.models", home="fvopt.models.loading")


def register_model_source(name: str, help: str, examples: tuple[str, ...] = ()) -> Callable:
    """Decorator over `load(name, weights) -> FeatureModel`: the model `name`."""
    return MODEL_SOURCES.register(name, help, examples=examples)


def register_model_family(
    prefix: str, load: ModelLoader, example: str, help: str, pattern: str | None = None
) -> Entry[ModelLoader]:
    """Every name `prefix<rest>` loads through `load(rest, weights)`."""
    return MODEL_SOURCES.add_family(prefix, load, help, example, pattern)


def find_source(name: str) -> tuple[ModelLoader, str] | None:
    """The loader of `name` and the text it receives (the rest after a family's prefix), or None."""
    if name in MODEL_SOURCES:
        return MODEL_SOURCES[name].obj, name
    family = MODEL_SOURCES.family_of(name)
    return None if family is None else (family.obj, name[len(family.name) :])
