"""What a user asks first of a model: which layers can I visualize, and what are its classes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ..errors import FvoptError, suggest
from ..canvas import describe, hw
from .layouts import Layout, detect, output_tensor
from .wrapper import FeatureModel


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # output shape for one image at the probed size (after the tuple rule)
    layout: Layout | None = None  # None: the output cannot be read (see `problem`)
    problem: str = ""  # why it cannot be read

    @property
    def channels(self) -> int:
        """Units a target can index: channels, or features per token."""
        return self.layout.units if self.layout else self.shape[0]


def _probe(model: FeatureModel, size) -> dict[str, tuple[str, object]]:
    """(module type, output tensor shape or the FvoptError it raises) of every named module at `size`
    px (a side or (height, width))."""
    found: dict[str, tuple[str, object]] = {}
    handles = []

    def hook_for(name: str):
        def hook(module, inputs, output):
            if name in found:  # a module called twice (shared): its first call
                return
            try:
                found[name] = (type(module).__name__, _per_image_shape(output_tensor(output, name), name))
            except FvoptError as err:
                found[name] = (type(module).__name__, err)

        return hook

    try:
        unhookable = getattr(model.net, "fvopt_unhookable", None) or {}
        for name, module in model.net.named_modules():
            if name and name not in unhookable:
                handles.append(module.register_forward_hook(hook_for(name)))
        with torch.no_grad():
            model(model.blank(size))
    except Exception as err:  # a network that cannot take this size: one line, before any work
        text = str(err).strip().splitlines()
        h, w = hw(size)
        raise FvoptError(
            f"{model.name} cannot run on {h}x{w} px images ({type(err).__name__}: "
            f"{text[0][:160] if text else ''}); its input size is {describe(model.input_size)} px"
        ) from err
    finally:
        for h in handles:
            h.remove()
    return found


def _per_image_shape(out: torch.Tensor, name: str) -> tuple[int, ...]:
    """The output shape of one image (the probe feeds one). Swin's window attention and LeViT's
    BatchNorm1d fold windows or tokens into the first axis: read as images, they would mix them."""
    if out.dim() == 0 or out.shape[0] != 1:
        raise FvoptError(
            f"layer {name} outputs shape {tuple(out.shape)} for one image: its first axis is not the "
            "batch of images (windows or tokens are folded into it), so fvopt cannot read it per image"
        )
    return tuple(out.shape[1:])


def list_layers(model: FeatureModel, size: int | None = None) -> list[LayerInfo]:
    """Every named module that produced an output, in forward order, with its layout at `size` px.

    Two probes, at `size` and a larger size, tell spatial axes (they follow the input) from unit
    axes; a fixed-size model (position embeddings) is probed once, at its own input size.
    """
    if model.hookable is not None:  # TorchScript: only the output can be read
        return []
    size = model.input_size if model.fixed_size else (size or model.input_size)
    first = _probe(model, size)
    second = None if model.fixed_size else _probe(model, tuple(s + 32 for s in hw(size)))
    prefix = prefix_tokens(model)
    out = []
    for name, (kind, shape) in first.items():
        if isinstance(shape, FvoptError):
            out.append(LayerInfo(name, kind, (), None, str(shape)))
            continue
        other = second.get(name, (None, None))[1] if second is not None else None
        other = other if isinstance(other, tuple) else None
        try:
            layout = _detect_with_prefix(shape, other, prefix, name)
            out.append(LayerInfo(name, kind, shape, layout))
        except FvoptError as err:
            out.append(LayerInfo(name, kind, shape, None, str(err)))
    return out


def _detect_with_prefix(shape, other, prefix: int, name: str) -> Layout:
    """Tokens carry the model's prefix tokens after the patch embedding and none before it."""
    try:
        return detect(shape, other, prefix, name)
    except FvoptError:
        if len(shape) == 2 and prefix:
            return detect(shape, other, 0, name)
        raise


def prefix_tokens(model: FeatureModel) -> int:
    """Class, distillation and register tokens of a transformer (timm's num_prefix_tokens; torchvision ViT: 1)."""
    net = model.net
    if hasattr(net, "num_prefix_tokens"):
        return int(net.num_prefix_tokens)
    if hasattr(net, "class_token"):  # torchvision VisionTransformer
        return 1
    return 0


def resolve_layer(model: FeatureModel, name: str) -> torch.nn.Module:
    """The module called `name`, or an error suggesting the closest layer names (or saying why
    the model's layers cannot be hooked: TorchScript, an exported program's inlined layer)."""
    if model.hookable is not None:
        raise FvoptError(f"layer '{name}' cannot be hooked: {model.hookable}")
    unhookable = getattr(model.net, "fvopt_unhookable", None) or {}
    if name in unhookable:
        raise FvoptError(unhookable[name])
    try:
        return model.net.get_submodule(name)
    except AttributeError:
        raise FvoptError(
            f"unknown layer '{name}' in model {model.name}.{suggest(name, model.layer_names())}"
            f" List the layers with: fvopt layers {model.name}"
        ) from None


def layer_info(model: FeatureModel, name: str, size: int | None = None) -> LayerInfo:
    """The layer's layout (refusing a layer whose output cannot be read)."""
    resolve_layer(model, name)
    layers = _cached_layers(model, size or model.input_size)
    if name not in layers:
        raise FvoptError(f"layer {name} of {model.name} produced no output in a forward pass (it is not used)")
    info = layers[name]
    if info.layout is None:
        raise FvoptError(info.problem)
    return info


def _cached_layers(model: FeatureModel, size: int) -> dict[str, LayerInfo]:
    """Layer layouts per input size, kept on the model so one probe serves every lookup."""
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
    """The number of classes the network's output holds; a network whose output is not one score
    per class, shape (N, classes), is refused in one line (a class index would read some other axis)."""
    with torch.no_grad():
        shape = tuple(model(model.blank()).shape)
    if len(shape) != 2:
        raise FvoptError(
            f"class targets read {model.name}'s output as class scores of shape (N, classes), and its "
            f"output has shape {shape}: use channel:LAYER:INDEX (fvopt layers lists the layers)"
        )
    return int(shape[-1])
