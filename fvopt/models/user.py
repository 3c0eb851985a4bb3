"""Your own network: any `torch.nn.Module` (`wrap`), a Python file's factory (`file.py:factory`), a
`torch.export` program (`.pt2`) or a TorchScript file, each with the preprocessing it expects.

Everything a user gives is checked here, before any work beyond one cheap probe pass: the channel
count against the network's first layer, mean/std lengths, the value range, that the network runs
at its input size. Each loader is a plain function (`load_factory`, `load_program`,
`load_torchscript`) so a model-source registry can register them by pattern.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import zipfile
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from ..io.canvas import Size, describe, hw, parse_size
from ..errors import FvoptError, first_line, suggest
from .wrapper import IMAGENET_MEAN, IMAGENET_STD, FeatureModel
from .weights import load_weights

PREPROCESSING = ("mean", "std", "input_size", "channels", "value_range")
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


def wrap(
    net: nn.Module,
    mean: float | Sequence[float] | str | None = None,
    std: float | Sequence[float] | str | None = None,
    input_size: Size | str | None = None,
    channels: int | None = None,
    value_range: tuple[float, float] | str | None = None,
    *,
    name: str | None = None,
    min_size: int | None = None,
    weights: str = "as given",
    fixed_size: bool | None = None,
    hookable: str | None = None,
) -> FeatureModel:
    """A FeatureModel around your network: what `visualize`, `Problem` and every fvopt call take.

    - `channels`: what the network's first layer takes (read from it when not given; a value that
      contradicts it is refused). 1 is grayscale; any count works.
    - `mean`, `std`: per-channel normalization after the value range (one number for all channels,
      or one per channel; "imagenet" for the ImageNet constants). Default: none (0 and 1).
    - `value_range`: the range of the network's training inputs, (lo, hi): fvopt's [0,1] images are
      mapped linearly onto it before mean/std (e.g. (0, 255)). Default (0, 1).
    - `input_size`: its natural input, a side or (height, width) (default 224): the default image
      size; a network that runs only at that size (a flatten before a linear layer, position
      embeddings) is fed images resampled to it.
    - `min_size`: the smallest image side it takes (default: the smaller of 32 and its input side).

    One probe pass at the input size checks that the network runs; nothing else is computed.
    """
    if isinstance(net, FeatureModel):
        given = {
            k: v
            for k, v in dict(
                mean=mean, std=std, input_size=input_size, channels=channels, value_range=value_range
            ).items()
            if v is not None
        }
        if not given:
            return net
        return rewrap(net, **given)
    if not isinstance(net, nn.Module):
        raise FvoptError(f"wrap needs a torch.nn.Module, not {type(net).__name__} {net!r:.80}")
    name = name or type(net).__name__
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in net.parameters()):
        raise FvoptError(
            f"{name} has lazy layers whose parameters are not yet initialized: run it once on an "
            "example batch of its inputs before giving it to fvopt"
        )
    first = first_layer(net)
    channels = check_channels(channels, first, name)
    size = parse_size(224 if input_size is None else input_size, "input_size")
    mean_v = _per_channel("mean", 0.0 if mean is None else mean, channels)
    std_v = _per_channel("std", 1.0 if std is None else std, channels)
    bad_std = next((s for s in std_v if s <= 0), None)
    if bad_std is not None:
        raise FvoptError(f"std {bad_std:g} is not allowed: every std must be > 0")
    lo, hi = parse_range(value_range)
    min_side = min(hw(size))
    min_size = min(32, min_side) if min_size is None else int(min_size)
    if not 1 <= min_size <= min_side:
        raise FvoptError(f"min_size {min_size} is not allowed: must be 1..{min_side} (the input size {describe(size)})")
    model = FeatureModel(
        net,
        name,
        input_size=size,
        mean=mean_v,
        std=std_v,
        min_size=min_size,
        weights=weights,
        fixed_size=False,
        channels=channels,
        value_range=(lo, hi),
        hookable=hookable,
    )
    _probe_runs(model)
    model.fixed_size = model._runs_only_at_input_size() if fixed_size is None else fixed_size
    return model


def rewrap(model: FeatureModel, **given) -> FeatureModel:
    """`model` with some of its preprocessing replaced (the CLI's --mean/--std/... on a named model)."""
    unknown = sorted(set(given) - set(PREPROCESSING))
    if unknown:
        raise FvoptError(f"unknown preprocessing option '{unknown[0]}': use {', '.join(PREPROCESSING)}")
    current = {
        "mean": tuple(model.mean.flatten().tolist()),
        "std": tuple(model.std.flatten().tolist()),
        "input_size": model.input_size,
        "channels": model.channels,
        "value_range": model.value_range,
    }
    if "channels" in given and given["channels"] != model.channels and ("mean" not in given or "std" not in given):
        if model.channels == 3 and (current["mean"], current["std"]) != ((0.0,) * 3, (1.0,) * 3):
            # the RGB constants cannot apply to another channel count: the user must say what does
            raise FvoptError(
                f"channels {given['channels']} differ from {model.name}'s 3: give its mean and std too "
                "(--mean/--std), its RGB constants do not fit"
            )
        current["mean"], current["std"] = 0.0, 1.0
    current.update(given)
    return wrap(
        model.net,
        name=model.name,
        weights=model.weights,
        min_size=None,
        fixed_size=None,
        hookable=model.hookable,
        **current,
    )


def first_layer(net: nn.Module) -> tuple[str, nn.Module, int] | None:
    """The first module (in definition order) that declares `in_channels`: what the network takes."""
    for layer_name, module in net.named_modules():
        count = getattr(module, "in_channels", None)
        if isinstance(count, int) and count > 0:
            return layer_name, module, count
    return None


def check_channels(channels: int | str | None, first: tuple[str, nn.Module, int] | None, name: str) -> int:
    """The channel count: the first layer's, or the user's when it agrees with it."""
    if channels is not None:
        if isinstance(channels, str) and channels.strip().isdigit():
            channels = int(channels)
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 4096:
            raise FvoptError(f"channels {channels!r} is not allowed: must be an integer in 1..4096")
    if first is None:
        return 3 if channels is None else channels
    layer_name, module, takes = first
    if channels is not None and channels != takes:
        raise FvoptError(
            f"channels {channels} does not fit {name}: its first layer '{layer_name}' "
            f"({type(module).__name__}) takes {takes} channel{'s' if takes != 1 else ''}; "
            f"give channels={takes} (--channels {takes})"
        )
    return takes


def _per_channel(what: str, value, channels: int) -> tuple[float, ...]:
    """mean/std as one value per channel: a number (all channels), a sequence of `channels`
    numbers, or "imagenet" (3 channels only); text "0.5,0.2" is a sequence."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "imagenet":
            if channels != 3:
                raise FvoptError(
                    f"{what} 'imagenet' holds 3 values (RGB) and the network takes {channels} channels: "
                    f"give {channels} values or one number"
                )
            return IMAGENET_MEAN if what == "mean" else IMAGENET_STD
        try:
            value = [float(v) for v in text.split(",")] if "," in text else float(text)
        except ValueError:
            raise FvoptError(
                f"{what} {value!r} is not allowed: give a number (every channel), "
                f"{f'{channels} comma-separated numbers, ' if channels > 1 else ''}or 'imagenet'"
            ) from None
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = (float(value),) * channels
    elif isinstance(value, (list, tuple)):
        if len(value) != channels:
            raise FvoptError(
                f"{what} has {len(value)} value{'s' if len(value) != 1 else ''} and the network takes "
                f"{channels} channel{'s' if channels != 1 else ''}: give {channels} "
                f"value{'s' if channels != 1 else ''} (or one number "
                "for every channel)"
            )
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise FvoptError(f"{what} {value!r} is not allowed: its values must be numbers") from None
    else:
        raise FvoptError(f"{what} {value!r} is not allowed: give a number or {channels} numbers")
    if not all(math.isfinite(v) for v in values):
        raise FvoptError(f"{what} {values!r} is not allowed: every value must be finite")
    return values


def parse_range(value) -> tuple[float, float]:
    """A value range (lo, hi) with lo < hi, from a pair or text '0,255' / '0-255' / '-1,1'."""
    if value is None:
        return 0.0, 1.0
    pair = value
    if isinstance(value, str):
        text = value.strip()
        parts = text.split(",") if "," in text else text.split(":")
        try:
            pair = tuple(float(p) for p in parts)
        except ValueError:
            pair = None
    try:
        lo, hi = (float(v) for v in pair)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise FvoptError(f"value_range {value!r} is not allowed: give two numbers LO,HI (e.g. 0,255 or -1,1)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise FvoptError(f"value_range {value!r} is not allowed: LO and HI must be finite with LO < HI")
    return lo, hi


def _probe_runs(model: FeatureModel) -> None:
    """One pass at the input size: a network that cannot take what it was declared to take is
    refused now, in one line, not inside a run."""
    try:
        with torch.no_grad():
            model.net(model.preprocess(model.blank()))
    except Exception as err:
        text = str(err).strip().splitlines()
        raise FvoptError(
            f"{model.name} does not run on {model.channels}-channel {describe(model.input_size)} px images "
            f"({type(err).__name__}: {text[0][:160] if text else ''}); give its channels and input size "
            "(--channels, --input-size)"
        ) from err


# -- loaders: each a function from a path to a FeatureModel -------------------------------------------


def is_user_model(name: str) -> bool:
    """Whether `name` names a user's network (a Python file's factory, an exported program, a
    TorchScript file) rather than a model fvopt knows by name."""
    if not isinstance(name, str):
        return False
    path, _, _ = name.rpartition(":") if ".py:" in name else (name, "", "")
    return path.endswith(".py") or name.endswith(".pt2") or name.lower().endswith(TORCHSCRIPT_SUFFIXES)


def describe_normalization(model: FeatureModel) -> str:
    """The normalization the network is fed with, for run lines and traces: "none" (mean 0, std 1),
    "imagenet", or "mean A,B,C std D,E,F"; a value range other than [0, 1] is named after it."""
    mean = [round(v, 6) for v in model.mean.flatten().tolist()]
    std = [round(v, 6) for v in model.std.flatten().tolist()]
    if all(m == 0 for m in mean) and all(s == 1 for s in std):
        text = "none"
    elif len(mean) == 3 and _close(mean, IMAGENET_MEAN) and _close(std, IMAGENET_STD):
        text = "imagenet"
    else:
        text = f"mean {','.join(f'{v:g}' for v in mean)} std {','.join(f'{v:g}' for v in std)}"
    lo, hi = model.value_range
    return text if (lo, hi) == (0, 1) else f"{text} after mapping [0,1] to [{lo:g},{hi:g}]"


def _close(values: Sequence[float], reference: Sequence[float]) -> bool:
    return all(abs(a - b) < 1e-6 for a, b in zip(values, reference))


NORMALIZATION_HINT = (
    "your network is fed [0,1] images with no normalization (mean 0, std 1): if it was trained on "
    "normalized images, give --mean imagenet --std imagenet or its own values (Python: mean='imagenet', std='imagenet')"
)


def load_user_model(name: str, weights=None, **preprocessing) -> FeatureModel:
    """Dispatch on the form of `name`: `file.py:factory`, `program.pt2`, a TorchScript file."""
    if ".py:" in name or name.endswith(".py"):
        return load_factory(name, weights, **preprocessing)
    if name.endswith(".pt2"):
        return load_program(name, weights, **preprocessing)
    return load_torchscript(name, weights, **preprocessing)


def load_factory(spec: str, weights=None, **preprocessing) -> FeatureModel:
    """`file.py:factory`: the module returned by calling `factory()` from the file, with `weights`
    (a state dict file, loaded weights_only) when given, else as the factory built it."""
    path_text, colon, func = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    if not colon or not func:
        raise FvoptError(
            f"model '{spec}' names a Python file but no function in it: give FILE.py:FACTORY "
            "(a function that returns a torch.nn.Module)"
        )
    path = Path(path_text)
    if not path.is_file():
        raise FvoptError(f"model file '{path}' does not exist (from --model {spec})")
    module_name = f"fvopt_user_{abs(hash(str(path.resolve())))}"
    try:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
        sys.modules[module_name] = module  # dataclasses and pickling look their module up by name
        loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise FvoptError(f"model file '{path}' raised {type(err).__name__} when imported: {first_line(err)}") from err
    factory = getattr(module, func, None)
    if factory is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise FvoptError(
            f"model file '{path}' has no function '{func}'.{suggest(func, names)} "
            f"Callables in it: {', '.join(names) or 'none'}"
        )
    if not callable(factory):
        raise FvoptError(f"'{func}' in '{path}' is a {type(factory).__name__}, not a function returning a module")
    try:
        net = factory()
    except Exception as err:
        raise FvoptError(f"{spec}: the factory raised {type(err).__name__}: {first_line(err)}") from err
    if not isinstance(net, nn.Module):
        raise FvoptError(
            f"{spec} returned a {type(net).__name__}, not a torch.nn.Module: the factory must return the network"
        )
    if weights is not None and str(weights) != "random":
        load_weights(net, weights, spec)
    described = "as the factory built it" if weights is None or str(weights) == "random" else str(weights)
    return wrap(net, name=spec, weights=described, **_given(preprocessing))


def _given(preprocessing: dict) -> dict:
    unknown = sorted(set(preprocessing) - set(PREPROCESSING))
    if unknown:
        raise FvoptError(f"unknown preprocessing option '{unknown[0]}': use {', '.join(PREPROCESSING)}")
    return {k: v for k, v in preprocessing.items() if v is not None}


@contextmanager
def _logger_silenced(name: str) -> Iterator[None]:
    """A library logger off for one call and back as it was: the one-line error says what went wrong."""
    logger = logging.getLogger(name)
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def load_program(path_text: str, weights=None, **preprocessing) -> FeatureModel:
    """A `torch.export` program (`torch.export.save`), its layers reached through
    `torch.export.unflatten`, where forward hooks work. Its input spec gives the channels and,
    for static spatial sizes, the input size (such a program is fed images resampled to it)."""
    path = Path(path_text)
    if not path.is_file():
        raise FvoptError(f"exported program '{path}' does not exist")
    if weights is not None:
        raise FvoptError(f"--weights does not apply to '{path}': an exported program carries its own weights")
    try:
        with _logger_silenced("torch.export"):  # it logs a 14-line traceback before falling back, then fails
            program = torch.export.load(str(path))
    except Exception as err:
        raise FvoptError(
            f"'{path}' is not a readable torch.export program ({type(err).__name__}: "
            f"{first_line(err)}); save one with torch.export.save(torch.export.export(net, args), path)"
        ) from err
    shape = _program_input_shape(program, path)
    batch, channels, height, width = shape
    if not isinstance(batch, torch.SymInt):
        raise FvoptError(
            f"'{path}' was exported for a batch of exactly {batch} image{'s' if batch != 1 else ''}, and "
            "fvopt evaluates batches of any size: export it with a dynamic batch, e.g. "
            "dynamic_shapes={'x': {0: torch.export.Dim('batch')}} (and 2: Dim('h'), 3: Dim('w') for any size)"
        )
    static = not isinstance(height, torch.SymInt) and not isinstance(width, torch.SymInt)
    example = program.example_inputs[0][0].shape if getattr(program, "example_inputs", None) else None
    given = _given(preprocessing)
    if (
        isinstance(channels, int)
        and given.get("channels") not in (None, channels)
        and int(given["channels"]) != channels
    ):
        raise FvoptError(
            f"channels {given['channels']} does not fit '{path}': the exported program takes {channels} "
            f"channel{'s' if channels != 1 else ''}; give --channels {channels}"
        )
    given.setdefault("channels", int(channels))
    if static:
        declared = (int(height), int(width))
        if "input_size" in given and hw(parse_size(given["input_size"], "input_size")) != declared:
            raise FvoptError(
                f"input size {given['input_size']} does not fit '{path}': it was exported for "
                f"{declared[0]}x{declared[1]} px only"
            )
        given["input_size"] = declared
    elif "input_size" not in given and example is not None:
        given["input_size"] = (int(example[-2]), int(example[-1]))
    try:
        net = torch.export.unflatten(program)
        hookable = None
    except Exception as err:  # the flat graph still runs: class targets only
        net = program.module()
        hookable = f"torch.export.unflatten failed on '{path}' ({type(err).__name__}: {first_line(err)})"
    net.fvopt_unhookable = _unhookable_layers(program, net)  # type: ignore[attr-defined]
    return wrap(
        net, name=str(path), weights="in the program", fixed_size=True if static else None, hookable=hookable, **given
    )


def _program_input_shape(program, path: Path) -> tuple:
    """(batch, channels, height, width) of the program's one image input, dims symbolic where dynamic."""
    users = list(program.graph_signature.user_inputs)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    tensors = [nodes[u].meta.get("val") for u in users if u in nodes]
    if len(tensors) != 1 or not isinstance(tensors[0], torch.Tensor) or tensors[0].dim() != 4:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in tensors]
        raise FvoptError(f"'{path}' takes {len(tensors)} inputs {shapes}: fvopt feeds one image batch (N, C, H, W)")
    return tuple(tensors[0].shape)


def _unhookable_layers(program, net: nn.Module) -> dict[str, str]:
    """Layers of the source network that the unflattened module cannot hook, with why: a module of
    the program's call graph that unflatten leaves without a forward of its own (never called in
    the exported graph, or inlined)."""
    out = {}
    names = dict(net.named_modules())
    for entry in program.module_call_graph:
        fqn = entry.fqn
        if not fqn:
            continue
        module = names.get(fqn)
        if module is None or type(module) is nn.Module:
            out[fqn] = (
                f"layer {fqn} of the exported program cannot be hooked: torch.export.unflatten gives it no "
                "forward of its own (it is not called in the exported graph); choose a layer listed by "
                "`fvopt layers`"
            )
    return out


def load_torchscript(path_text: str, weights=None, **preprocessing) -> FeatureModel:
    """A TorchScript file (`torch.jit.save`). ScriptModules take no forward hooks, so only the
    output can be read: class targets only, and that limit is said in every refusal."""
    path = Path(path_text)
    if not path.is_file():
        raise FvoptError(f"model file '{path}' does not exist")
    if not _is_torchscript(path):
        raise FvoptError(
            f"'{path}' is not a TorchScript file (a .pt holding weights is a state dict): give the network "
            "as --model FILE.py:FACTORY --weights " + str(path) + ", or a torch.export program (.pt2)"
        )
    if weights is not None:
        raise FvoptError(f"--weights does not apply to '{path}': a TorchScript file carries its own weights")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; the file is still read
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise FvoptError(
            f"'{path}' is not a readable TorchScript file ({type(err).__name__}: {first_line(err)})"
        ) from err
    reason = (
        f"'{path}' is TorchScript, whose modules take no forward hooks: only class targets (class:N, the "
        "output) work on it; for layer targets export it with torch.export (.pt2) or give FILE.py:FACTORY"
    )
    return wrap(_ScriptNet(net), name=str(path), weights="in the file", hookable=reason, **_given(preprocessing))


class _ScriptNet(nn.Module):
    """A ScriptModule held as a plain module, so fvopt's in-place and eval handling leave it alone."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.script = script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a code/ folder (torch.save's zip has data.pkl only)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
