"""What a user asks first of a model: which layers can I visualize, and what are its classes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import torch
from torch import nn

from ..errors import FvoptError, suggest
from ..io.canvas import describe, hw
from .layouts import Layout, detect, output_tensor

# The wrapper (models.wrapper.FeatureModel) is not imported here: it lists its own layers through this
# module (FeatureModel.layers), and an import back would make the two a cycle.
FeatureModel = nn.Module


# `LAYER#K` names the K-th call (1-based) of a module that runs more than once per forward
# (torchvision's BasicBlock calls its one `relu` twice; a block applied in a loop; shared layers).
CALL_MARK = "#"


@dataclass(frozen=True)
class LayerInfo:
    """One readable output of a network: a module's output, or one call of a module that runs
    several times per forward (`name` is then `MODULE#K` and `call` is K)."""

    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # output shape for one image at the probed size (after the tuple rule)
    layout: Layout | None = None  # None: the output cannot be read (see `problem`)
    problem: str = ""  # why it cannot be read
    calls: int = 1  # how many times the module runs in one forward pass
    call: int | None = None  # which call this entry reads (1-based); None: the module itself

    @property
    def channels(self) -> int:
        """Units a target can index: channels, or features per token."""
        return self.layout.units if self.layout else self.shape[0]

    @property
    def module(self) -> str:
        """The module's name (without `#K`)."""
        return self.name.partition(CALL_MARK)[0]

    @property
    def spellings(self) -> tuple[str, ...]:
        """The names that read each call of a module that runs more than once (empty when it runs once)."""
        return call_names(self.module, self.calls) if self.calls > 1 else ()

    def describe(self) -> str:
        """One line: name, type, output shape and layout, or why it cannot be read."""
        if self.call is None and self.calls > 1:
            return f"{self.name}  {self.kind}  runs {self.calls} times per forward: {', '.join(self.spellings)}"
        what = self.layout.describe() if self.layout else f"not readable: {self.problem}"
        shape = "x".join(map(str, self.shape)) or "-"
        return f"{self.name}  {self.kind}  {shape}  {what}"


def call_names(module: str, calls: int) -> tuple[str, ...]:
    return tuple(f"{module}{CALL_MARK}{k}" for k in range(1, calls + 1))


def split_call(name: str) -> tuple[str, str | None]:
    """'layer1.0.relu#2' -> ('layer1.0.relu', '2'); a name without '#' -> (name, None)."""
    module, mark, call = name.partition(CALL_MARK)
    return module, (call if mark else None)


def call_index(name: str) -> int | None:
    """K of `MODULE#K` as a number (None without '#'; 0 when K is not a whole number from 1:
    `resolve_layer` and `layer_info` refuse those)."""
    call = split_call(name)[1]
    if call is None:
        return None
    return int(call) if call.isdigit() and call.isascii() and int(call) >= 1 else 0


def _probe(model: FeatureModel, size) -> dict[str, tuple[str, list[object]]]:
    """(module type, [output tensor shape or the FvoptError it raises, one per call]) of every named
    module at `size` px (a side or (height, width)), in the order of their first calls."""
    found: dict[str, tuple[str, list[object]]] = {}
    handles = []

    def hook_for(name: str):
        def hook(module, inputs, output):
            calls = found.setdefault(name, (type(module).__name__, []))[1]
            label = f"{name}{CALL_MARK}{len(calls) + 1}" if calls else name
            try:
                calls.append(_per_image_shape(output_tensor(output, label), label))
            except FvoptError as err:
                calls.append(err)

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
    for name, (kind, shapes) in first.items():
        others = second.get(name, (None, []))[1] if second is not None else []
        if len(shapes) == 1:
            out.append(_read(name, kind, shapes[0], others[0] if others else None, prefix))
            continue
        # A module run several times: its own entry says so, one entry per call reads that call
        out.append(LayerInfo(name, kind, (), None, _reused_problem(model, name, len(shapes)), len(shapes)))
        for k, (call_name, shape) in enumerate(zip(call_names(name, len(shapes)), shapes), start=1):
            other = others[k - 1] if len(others) == len(shapes) else None
            out.append(replace(_read(call_name, kind, shape, other, prefix), calls=len(shapes), call=k))
    return out


def _read(name: str, kind: str, shape, other, prefix: int) -> LayerInfo:
    """The LayerInfo of one output, from its shapes at two sizes (or the error its probe raised)."""
    if isinstance(shape, FvoptError):
        return LayerInfo(name, kind, (), None, str(shape))
    other = other if isinstance(other, tuple) else None
    try:
        return LayerInfo(name, kind, shape, _detect_with_prefix(shape, other, prefix, name))
    except FvoptError as err:
        return LayerInfo(name, kind, shape, None, str(err))


def _reused_problem(model: FeatureModel, name: str, calls: int) -> str:
    """The one-line refusal of a module named without the call to read."""
    return (
        f"layer {name} of {model.name} runs {calls} times per forward (one module, called {calls} times): "
        f"name the call to read, {' or '.join(call_names(name, calls))} (#K reads the K-th call)"
    )


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
    """The module called `name` (for `MODULE#K`: MODULE, K checked to be a whole number from 1), or
    an error suggesting the closest layer names (or saying why the model's layers cannot be hooked:
    TorchScript, an exported program's inlined layer)."""
    if model.hookable is not None:
        raise FvoptError(f"layer '{name}' cannot be hooked: {model.hookable}")
    module_name, call = split_call(name)
    unhookable = getattr(model.net, "fvopt_unhookable", None) or {}
    if module_name in unhookable:
        raise FvoptError(unhookable[module_name])
    try:
        module = model.net.get_submodule(module_name) if module_name else None
    except AttributeError:
        module = None
    if module is None:
        raise FvoptError(
            f"unknown layer '{name}' in model {model.name}.{suggest(module_name, model.layer_names())}"
            f" List the layers with: fvopt layers {model.name}"
        ) from None
    if call is not None and call_index(name) == 0:
        calls = _calls(model, module_name, model.input_size)
        raise FvoptError(
            f"layer '{name}' of {model.name}: the call after '#' must be a whole number from 1; "
            f"{_choice(module_name, calls)}"
        )
    return module


def _choice(module_name: str, calls: int) -> str:
    """What a user may write for a module that runs `calls` times per forward."""
    if calls == 0:
        return f"{module_name} produced no output in a forward pass (it is not used)"
    if calls == 1:
        return f"{module_name} runs once per forward: use {module_name} (or {module_name}#1)"
    return f"{module_name} runs {calls} times per forward: use {' or '.join(call_names(module_name, calls))}"


def _calls(model: FeatureModel, module_name: str, size) -> int:
    """How many times a module runs per forward at `size` (0: never), from the cached probe."""
    info = cached_layers(model, size).get(module_name)
    return info.calls if info is not None else 0


def layer_info(model: FeatureModel, name: str, size: int | None = None) -> LayerInfo:
    """The layer's layout (refusing a layer whose output cannot be read, and a module that runs
    more than once per forward unless `MODULE#K` names the call to read)."""
    resolve_layer(model, name)
    layers = cached_layers(model, size or model.input_size)
    module_name = split_call(name)[0]
    if module_name not in layers:
        raise FvoptError(f"layer {name} of {model.name} produced no output in a forward pass (it is not used)")
    calls, k = layers[module_name].calls, call_index(name)
    if k is not None and k > calls:
        raise FvoptError(f"layer '{name}' of {model.name}: #{k} is out of range; {_choice(module_name, calls)}")
    info = replace(layers[module_name], name=name, call=1) if k == 1 and calls == 1 else layers[name]
    if info.layout is None:
        raise FvoptError(info.problem)
    return info


def cached_layers(model: FeatureModel, size: int) -> dict[str, LayerInfo]:
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
