"""Load a model by name: the offline EfficientNet-Lites, `torchvision:NAME`, `timm:NAME`.

Weights never come from the network at run time. `weights=None` means the model's pretrained
weights, which must be on disk (shipped by a package or already in the local cache); a path loads a
local file with `weights_only=True`; `"random"` gives random weights, and only when asked for.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from ..errors import FvoptError, suggest
from .lite import LITE_VARIANTS, build_lite
from .wrapper import FeatureModel

PREFIXES = ("torchvision:", "timm:")
# Networks whose smallest usable input is larger than the usual stride-32 minimum.
_MIN_SIZE = {"inception_v3": 75}


def known_models() -> list[str]:
    """Names `load_model` accepts directly, plus the patterns for library architectures."""
    return list(LITE_VARIANTS) + ["torchvision:<name>", "timm:<name>"]


def load_model(name: str, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FeatureModel:
    """A FeatureModel in eval mode on `device`, taking [0,1] RGB images."""
    if name in LITE_VARIANTS:
        if weights is None:
            net = build_lite(name, pretrained=True)
        else:
            net = build_lite(name, pretrained=False)
            _load_weights(net, weights, name)
        model = FeatureModel(net, name, input_size=LITE_VARIANTS[name][1], weights=_describe(weights))
    elif name.startswith("torchvision:"):
        model = _torchvision(name.split(":", 1)[1], weights)
    elif name.startswith("timm:"):
        model = _timm(name.split(":", 1)[1], weights)
    else:
        raise FvoptError(
            f"unknown model '{name}'.{suggest(name, LITE_VARIANTS)} Known: {', '.join(known_models())}"
        )
    return model.to(resolve_device(device))


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' picks CUDA when present; an explicit 'cuda' without a GPU is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise FvoptError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FvoptError("device 'cuda' was asked for but no CUDA GPU is available: use --device cpu or auto")
    return dev


def _describe(weights) -> str:
    return "pretrained" if weights is None else str(weights)


def _load_weights(net: torch.nn.Module, weights, name: str) -> None:
    if str(weights) == "random":
        return
    state = read_state_dict(weights, name)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        mine = net.state_dict()
        missing = [k for k in mine if k not in state]
        unexpected = [k for k in state if k not in mine]
        wrong = [k for k in mine if k in state and state[k].shape != mine[k].shape]
        detail = "; ".join(part for part in (
            f"{len(missing)} missing (first: {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (first: {unexpected[0]})" if unexpected else "",
            f"{len(wrong)} of another shape (first: {wrong[0]} {tuple(state[wrong[0]].shape)} vs "
            f"{tuple(mine[wrong[0]].shape)})" if wrong else "") if part) or _first_line(err)
        raise FvoptError(f"weight file '{weights}' does not fit {name}: {detail}") from None


def read_state_dict(weights, name: str) -> dict[str, torch.Tensor]:
    """A state dict from a user's file, loaded with weights_only=True, or one line saying why not."""
    path = Path(weights)
    if not path.is_file():
        raise FvoptError(f"weight file '{path}' for {name} does not exist (or pass weights='random')")
    if path.stat().st_size == 0:
        raise FvoptError(f"weight file '{path}' is empty")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head != b"PK" and not head.startswith(b"\x80"):  # torch.save writes a zip archive (or, long ago, a pickle)
        raise FvoptError(f"weight file '{path}' is not a torch checkpoint (it is neither a zip archive nor a "
                         "pickle): save one with torch.save(model.state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise FvoptError(f"weight file '{path}' holds Python objects, not only tensors, and fvopt loads weights "
                             "with weights_only=True, which refuses them (unpickling them could run code). "
                             "Save a plain state dict: torch.save(model.state_dict(), path)") from None
        raise FvoptError(f"weight file '{path}' is not a torch checkpoint (unpickling failed: "
                         f"{_first_line(err)})") from None
    except Exception as err:  # zip, EOF and text files surface as many exception types
        raise FvoptError(f"weight file '{path}' is not a readable torch checkpoint: {_first_line(err)}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FvoptError(f"weight file '{path}' holds a {type(state).__name__}, not a state dict (names -> tensors)")
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        k = odd[0]
        raise FvoptError(f"weight file '{path}' is not a state dict of named tensors: entry {str(k)[:60]!r} holds a "
                         f"{type(state[k]).__name__} ({len(odd)} such entries)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _torchvision(arch: str, weights) -> FeatureModel:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise FvoptError(f"unknown torchvision model '{arch}'.{suggest(arch, names)}")
    kwargs = {"aux_logits": False, "init_weights": False} if arch in ("inception_v3", "googlenet") else {}
    if weights is None:
        enum = torchvision.models.get_model_weights(arch).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if not cached.is_file():
            raise FvoptError(
                f"no pretrained weights for torchvision:{arch} on disk (looked for {cached}); this machine does not "
                "download them: pass weights=FILE (a local state dict) or weights='random'"
            )
        net = torchvision.models.get_model(arch, weights=None, **kwargs)
        _load_weights(net, cached, f"torchvision:{arch}")
    else:
        net = torchvision.models.get_model(arch, weights=None, **kwargs)
        _load_weights(net, weights, f"torchvision:{arch}")
    return FeatureModel(net, f"torchvision:{arch}", input_size=299 if arch == "inception_v3" else 224,
                        min_size=_MIN_SIZE.get(arch, 32), weights=_describe(weights))


def _timm(arch: str, weights) -> FeatureModel:
    import timm

    names = timm.list_models()
    if arch not in names and arch.split(".")[0] not in names:
        raise FvoptError(f"unknown timm model '{arch}'.{suggest(arch, names)}")
    if weights is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            net = timm.create_model(arch, pretrained=True)
        except Exception as err:
            raise FvoptError(
                f"no pretrained weights for timm:{arch} in the local cache ({type(err).__name__}); this machine does "
                "not download them: pass weights=FILE (a local state dict) or weights='random'"
            ) from None
    else:
        net = timm.create_model(arch, pretrained=False)
        _load_weights(net, weights, f"timm:{arch}")
    cfg = net.pretrained_cfg or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return FeatureModel(net, f"timm:{arch}", input_size=size, mean=cfg.get("mean", (0.485, 0.456, 0.406)),
                        std=cfg.get("std", (0.229, 0.224, 0.225)), weights=_describe(weights))
