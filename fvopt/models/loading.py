"""Load a model by name: the offline EfficientNet-Lites, `torchvision:NAME`, `timm:NAME`.

Weights never come from the network at run time. `weights=None` means the model's pretrained
weights, which must be on disk (shipped by a package or already in the local cache); a path loads a
local file with `weights_only=True`; `"random"` gives random weights, and only when asked for.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import torch

from ..runtime.scoped import process_state_kept
from .offline import hub_offline
from ..errors import FvoptError, first_line, suggest
from .weights import load_weights, read_state_dict  # noqa: F401  (read_state_dict: read from here by callers)
from .lite import LITE_VARIANTS, build_lite
from .sources import MODEL_SOURCES, find_source, register_model_family, register_model_source
from .wrapper import FeatureModel

PREFIXES = ("torchvision:", "timm:")
# Networks whose smallest usable input is larger than the usual stride-32 minimum.
_MIN_SIZE = {"inception_v3": 75}


def known_models() -> list[str]:
    """Names `load_model` accepts directly, plus the patterns for library architectures."""
    patterns = [family.extra["pattern"] for family in MODEL_SOURCES.families.values()]
    return (
        MODEL_SOURCES.names()
        + patterns
        + ["FILE.py:FACTORY", "PROGRAM.pt2 (torch.export)", "FILE.pt (TorchScript: class targets only)"]
    )


def load_model(
    name: str, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu", **preprocessing
) -> FeatureModel:
    """A FeatureModel in eval mode on `device`, taking [0,1] images. `name` is a known model or a
    user's network (`file.py:factory`, `program.pt2`, a TorchScript file: see fvopt.models.user);
    `preprocessing` (mean, std, input_size, channels, value_range) overrides the model's own."""
    from .user import is_user_model, load_user_model, rewrap

    if not isinstance(name, str):
        raise FvoptError(
            f"model must be a name such as 'lite0' or 'torchvision:resnet50', not {type(name).__name__} {name!r}"
        )
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise FvoptError(f"weights must be a file path or 'random', not {type(weights).__name__} {weights!r}")
    preprocessing = {k: v for k, v in preprocessing.items() if v is not None}
    if is_user_model(name):
        return load_user_model(name, weights, **preprocessing).to(resolve_device(device))
    # Building a network draws its initial weights from torch's global generator; with pretrained or
    # loaded weights those draws are thrown away, so the caller's generators are left as found.
    # weights="random" draws from them as any torch.nn constructor does.
    with nullcontext() if weights == "random" else process_state_kept():
        model = _named_model(name, weights)
    if preprocessing:
        model = rewrap(model, **preprocessing)
    return model.to(resolve_device(device))


def _named_model(name: str, weights) -> FeatureModel:
    """A model fvopt knows by name (a source registered in fvopt.models.sources), with its own preprocessing."""
    found = find_source(name)
    if found is None:
        raise MODEL_SOURCES.unknown(name, known=", ".join(known_models()))
    load, rest = found
    return load(rest, weights)


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


def _lite(name: str, weights) -> FeatureModel:
    if weights is None:
        net = build_lite(name, pretrained=True)
    else:
        net = build_lite(name, pretrained=False)
        load_weights(net, weights, name)
    return FeatureModel(net, name, input_size=LITE_VARIANTS[name][1], weights=_describe(weights), fixed_size=False)


for _name, (_n, _side) in LITE_VARIANTS.items():
    _shipped = "ImageNet weights shipped offline" if _name in ("lite0", "lite1") else "random weights or your file"
    register_model_source(_name, f"EfficientNet-Lite{_n} at {_side} px, {_shipped}")(_lite)


def _torchvision(spec: str, weights) -> FeatureModel:
    """torchvision:ARCH or torchvision:ARCH@ENUM, built exactly as torchvision builds it for that enum.

    The network is made by torchvision's own builder with `weights=ENUM` (so GoogLeNet and
    Inception-v3 get `transform_input=True` and their auxiliary heads for the strict load, then
    lose the heads, and every architecture gets its enum's class count and image size), while the
    state dict comes from the local torch hub cache under the enum's own file name, or from the
    user's file, always loaded with weights_only=True; nothing is downloaded.
    """
    import torchvision

    arch, _, enum_name = spec.partition("@")
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise FvoptError(f"unknown torchvision model '{arch}'.{suggest(arch, names)}")
    enum = _weights_enum(arch, enum_name)
    name = f"torchvision:{arch}"
    if str(weights) == "random":
        quiet = {"init_weights": False} if arch in ("googlenet", "inception_v3") else {}  # no FutureWarning
        net = torchvision.models.get_model(arch, weights=None, **quiet)
        described = "random"
    else:
        path = Path(weights) if weights is not None else Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if weights is None and not path.is_file():
            raise FvoptError(
                f"no pretrained weights for {name}@{enum.name} on disk (looked for {path}); this machine "
                "does not download them: put the file there, or give --weights FILE or --weights random (Python: "
                "weights=FILE or weights='random')"
            )
        state = read_state_dict(path, name)
        try:
            net = _build_with_state(arch, enum, state, f"weight file '{path}'", name)
        except FvoptError:
            if weights is None:
                raise
            # a file saved from a model without auxiliary heads: for GoogLeNet and Inception-v3, the
            # model torchvision gives for pretrained weights (transform_input=True) after it drops them
            extra = (
                {"aux_logits": False, "transform_input": True, "init_weights": False}
                if arch in ("googlenet", "inception_v3")
                else {}
            )
            net = torchvision.models.get_model(arch, weights=None, **extra)
            load_weights(net, path, name)
        described = f"{enum.name} ({path})" if weights is None else str(weights)
    preprocess = enum.transforms()
    size = int(_first(preprocess.crop_size))
    fixed = True if hasattr(net, "class_token") else None  # VisionTransformer; others: probed when it matters
    interpolation = getattr(preprocess.interpolation, "value", "bilinear")
    return FeatureModel(
        net,
        name if str(weights) == "random" or weights is not None else f"{name}@{enum.name}",
        input_size=size,
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
        min_size=_MIN_SIZE.get(arch, 32),
        weights=described,
        fixed_size=fixed,
        interpolation=interpolation,
    )


register_model_family(
    "torchvision:",
    _torchvision,
    "torchvision:resnet18",
    "any torchvision classification model; pretrained weights from the local cache",
    "torchvision:<name>[@WEIGHTS_ENUM]",
)


def _weights_enum(arch: str, enum_name: str):
    """The named weights enum of `arch` (DEFAULT when none is named), suggesting the existing ones."""
    import torchvision

    try:
        enums = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise FvoptError(f"torchvision:{arch} has no pretrained weights enum; use weights='random' or a file") from None
    known = [e.name for e in enums]
    if not enum_name:
        return enums.DEFAULT
    if enum_name not in known and enum_name != "DEFAULT":
        raise FvoptError(
            f"unknown weights '{enum_name}' for torchvision:{arch}.{suggest(enum_name, known)} "
            f"Known: {', '.join(known)}"
        )
    return enums[enum_name] if enum_name != "DEFAULT" else enums.DEFAULT


def _build_with_state(arch: str, enum, state: dict, source: str, name: str):
    """torchvision's builder for `enum`, fed `state` instead of a download (its strict load checks it)."""
    import torchvision
    from torchvision.models._api import WeightsEnum

    original = WeightsEnum.get_state_dict
    WeightsEnum.get_state_dict = lambda self, *args, **kwargs: state
    try:
        return torchvision.models.get_model(arch, weights=enum)
    except RuntimeError as err:
        raise FvoptError(
            f"{source} does not fit {name} as torchvision builds it for {enum.name}: {_mismatch(err)}"
        ) from err
    finally:
        WeightsEnum.get_state_dict = original


def _mismatch(err: RuntimeError) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if line.startswith(("Missing", "Unexpected", "size mismatch"))), None)
    return (detail or (lines[0] if lines else "state dict mismatch"))[:300]


def _first(value) -> int:
    return value[0] if isinstance(value, (list, tuple)) else value


def _timm(arch: str, weights) -> FeatureModel:
    """timm:NAME. Pretrained weights come only from the local Hugging Face or torch hub cache,
    looked up before timm is asked, so no network attempt is ever made."""
    import timm

    names = timm.list_models()
    if arch not in names and arch.split(".")[0] not in names:
        raise FvoptError(f"unknown timm model '{arch}'.{suggest(arch, names)}")
    name = f"timm:{arch}"
    if weights is None:
        with hub_offline():  # for this load only (fvopt/models/offline.py)
            path = _timm_cached_file(arch)
            net = _timm_pretrained(arch, path, name)
        described = f"pretrained ({path})"
    else:
        with hub_offline():
            net = timm.create_model(arch, pretrained=False)
        load_weights(net, weights, name)
        described = _describe(weights)
    cfg = net.pretrained_cfg or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    patch = getattr(net, "patch_embed", None)
    fixed = (
        True
        if (
            patch is not None
            and getattr(patch, "strict_img_size", False)
            and not getattr(patch, "dynamic_img_pad", False)
            and not getattr(net, "dynamic_img_size", False)
        )
        else None
    )  # None: probed when it matters
    return FeatureModel(
        net,
        name,
        input_size=size,
        mean=cfg.get("mean", (0.485, 0.456, 0.406)),
        std=cfg.get("std", (0.229, 0.224, 0.225)),
        weights=described,
        fixed_size=fixed,
        min_size=16 if fixed else 32,
        interpolation=cfg.get("interpolation", "bilinear"),
    )


register_model_family(
    "timm:", _timm, "timm:resnet18", "any timm model; pretrained weights from the local cache", "timm:<name>"
)


def _timm_pretrained(arch: str, path: Path, name: str):
    """timm's pretrained build (its key conversions, head adaptation, strict load) fed a state dict
    that fvopt read itself, so a broken cached file is one line and pickles load weights_only."""
    import timm

    if path.suffix == ".npz":  # big_vision/JAX checkpoints: timm's own reader (numpy, no pickle)
        overlay = {"file": str(path)}
    else:
        state = read_safetensors(path, name) if path.suffix == ".safetensors" else read_state_dict(path, name)
        overlay = {"state_dict": state}
    try:
        return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay)
    except FvoptError:
        raise
    except Exception as err:  # a strict-load mismatch, or a checkpoint timm's converter cannot read
        detail = _mismatch(err) if isinstance(err, RuntimeError) else first_line(err)
        raise FvoptError(f"pretrained file '{path}' does not fit {name}: {detail}") from err


def read_safetensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    """A .safetensors file (tensors only, no code can run), or one line saying why not."""
    from safetensors.torch import load_file

    if path.stat().st_size == 0:
        raise FvoptError(f"weight file '{path}' for {name} is empty")
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:
        raise FvoptError(
            f"weight file '{path}' for {name} is not a readable safetensors file: {first_line(err)}"
        ) from err


def _timm_cached_file(arch: str) -> Path:
    """The pretrained file of a timm model in the local caches, or one line naming where fvopt looked."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    looked = []
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = cfg.hf_hub_id.split("@")[0]
        for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"):  # timm's order
            if not filename:
                continue
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return Path(found)
            looked.append(f"hf:{repo}/{filename}")
    if cfg is not None and cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if path.is_file():
            return path
        looked.append(str(path))
    where = "; ".join(looked) or "no pretrained source is known for it"
    raise FvoptError(
        f"no pretrained weights for timm:{arch} in the local caches (looked for {where}); this machine "
        "does not download them: give --weights FILE (a local state dict) or --weights random (Python: "
        "weights=FILE or weights='random')"
    )
