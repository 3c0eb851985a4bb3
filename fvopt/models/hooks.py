"""Capture the activations of named layers for one forward pass, and always remove the hooks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import FvoptError
from .info import call_index, layer_info, resolve_layer  # noqa: F401  (resolve_layer: also read from here)
from .layouts import output_tensor
from .wrapper import FeatureModel

LOGITS = "logits"


class _StopForward(Exception):
    """Raised by the last needed hook: the rest of the network cannot change the objective."""


@contextmanager
def capture(model: FeatureModel, layers: set[str] | frozenset[str], stop_early: bool = True) -> Iterator["Capture"]:
    """Hook `layers` of `model`; yields a Capture whose `run(images)` returns the activations.

    With `stop_early`, the forward pass stops as soon as every hooked layer has fired, unless the
    logits are needed: the rest of the network cannot change the objective. Hooks are removed on
    exit, even when the body raises.
    """
    cap = Capture(model, set(layers), stop_early)
    try:
        yield cap
    finally:
        cap.remove()


class Capture:
    def __init__(self, model: FeatureModel, layers: set[str], stop_early: bool) -> None:
        self.model = model
        self.layers = layers
        self.stop_early = stop_early and LOGITS not in layers
        self.acts: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}  # calls seen in this pass, per hooked name
        self.handles = []
        self.layouts = {name: layer_layout(model, name) for name in layers - {LOGITS}}
        for name in sorted(layers - {LOGITS}):
            module = resolve_layer(model, name)
            self.handles.append(module.register_forward_hook(self._hook(name, call_index(name) or 1)))

    def _hook(self, name: str, wanted: int):
        """Keep the output of the module's `wanted`-th call in this pass (`LAYER#K`; 1 for a plain
        name): the pass stops early only once every hooked layer has its call."""

        def hook(module, inputs, output):
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] != wanted:
                return
            self.acts[name] = output_tensor(output, name)
            if self.stop_early and len(self.acts) == len(self.layers):
                raise _StopForward

        return hook

    def run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations of the hooked layers (and 'logits' when asked for) for `images`."""
        self.acts, self.calls = {}, {}
        try:
            logits = self.model(images)
            if LOGITS in self.layers:
                self.acts[LOGITS] = logits
        except _StopForward:
            pass
        missing = self.layers - set(self.acts)
        if missing:
            raise FvoptError(f"layers {sorted(missing)} of {self.model.name} produced no output in a forward pass")
        return self.acts

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def layer_layout(model: FeatureModel, name: str):
    """The recorded layout of a layer: from any probe already made (the kind of layout, units and
    prefix tokens do not depend on the image size), else probed once at the model's input size."""
    for layers in model.__dict__.get("_layer_cache", {}).values():
        if name in layers and layers[name].layout is not None:
            return layers[name].layout
    return layer_info(model, name, model.input_size).layout
