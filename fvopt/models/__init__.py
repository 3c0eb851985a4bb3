"""Models by name, their preprocessing, layer discovery and activation hooks."""

from .hooks import LOGITS, capture, resolve_layer
from .info import LayerInfo, class_name, layer_info, list_layers
from .loading import known_models, load_model, resolve_device
from .user import wrap
from .wrapper import FeatureModel

__all__ = [
    "FeatureModel",
    "LOGITS",
    "LayerInfo",
    "capture",
    "class_name",
    "known_models",
    "layer_info",
    "list_layers",
    "load_model",
    "resolve_device",
    "resolve_layer",
    "wrap",
]
