"""What a user asks first of a model: which layers can I visualize, and what are its classes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .wrapper import FeatureModel


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]  # output shape for one image: (C, H, W) or (C,)

    @property
    def channels(self) -> int:
        return self.shape[0]


def list_layers(model: FeatureModel, size: int | None = None) -> list[LayerInfo]:
    """Every named module with a tensor output, in forward order, with its output shape at `size` px."""
    size = size or model.input_size
    found: list[LayerInfo] = []
    handles = []

    def hook_for(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor):
                found.append(LayerInfo(name, type(module).__name__, tuple(output.shape[1:])))
        return hook

    try:
        for name, module in model.net.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
        with torch.no_grad():
            model.net((torch.full((1, 3, size, size), 0.5, device=model.device) - model.mean) / model.std)
    finally:
        for h in handles:
            h.remove()
    return found


def layer_info(model: FeatureModel, name: str, size: int | None = None) -> LayerInfo:
    from .hooks import resolve_layer

    resolve_layer(model, name)
    return _cached_layers(model, size or model.input_size)[name]


def _cached_layers(model: FeatureModel, size: int) -> dict[str, LayerInfo]:
    """Layer shapes per input size, kept on the model so one probe pass serves every lookup."""
    cache = model.__dict__.setdefault("_layer_cache", {})
    if size not in cache:
        cache[size] = {info.name: info for info in list_layers(model, size)}
    return cache[size]


@lru_cache(maxsize=1)
def _imagenet_info():
    from timm.data import ImageNetInfo

    return ImageNetInfo()


def class_name(index: int) -> str:
    """The ImageNet-1k name of class `index` (from timm's shipped class list)."""
    return _imagenet_info().index_to_description(index)


def num_classes(model: FeatureModel) -> int:
    with torch.no_grad():
        return int(model(torch.full((1, 3, model.input_size, model.input_size), 0.5, device=model.device)).shape[-1])
