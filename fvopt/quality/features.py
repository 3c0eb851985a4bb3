"""The judge network: a second network whose penultimate features compare images.

A measure judged by the network that was optimized can be satisfied by the same adversarial
pattern that fooled it; a different network (by default the other EfficientNet-Lite) is a fairer
eye. Its penultimate features are the input of its last linear layer (the pooled features a
linear classifier reads), as in MaCo's plausibility.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FvoptError
from ..evaluate import repeated_pictures
from ..models import FeatureModel, load_model


def default_judge(model_name: str) -> str:
    """lite1 judges lite0; lite0 judges every other network."""
    return "lite1" if model_name == "lite0" else "lite0"


def _file_and_factory(name: str) -> tuple[str, str]:
    path, colon, factory = name.rpartition(":") if ".py:" in name else (name, "", "")
    return path, factory


def same_network(a: str, b: str) -> bool:
    """Whether two model names name the same network: equal names, or a user's network given by two
    paths to one file (`net.py:make` and `./dir/../net.py:make`, or a link to it), same factory."""
    if a == b:
        return True
    from ..models.user import is_user_model

    if not (is_user_model(a) and is_user_model(b)):
        return False
    (path_a, factory_a), (path_b, factory_b) = _file_and_factory(a), _file_and_factory(b)
    if factory_a != factory_b:
        return False
    try:
        return os.path.samefile(Path(path_a).expanduser(), Path(path_b).expanduser())
    except OSError:  # one of them does not exist: compare where they would point
        return Path(path_a).expanduser().resolve() == Path(path_b).expanduser().resolve()


def check_judge_name(judge: str, model_name: "str | None") -> None:
    """Refuse, before any model loads, a judge that names no model fvopt can load (an unknown name, a
    missing file) or names the optimized network (by name or by another path to its file)."""
    from ..models import known_models
    from ..models.sources import MODEL_SOURCES, find_source
    from ..models.user import is_user_model

    if model_name is not None and same_network(judge, model_name):
        raise FvoptError(
            f"judge {judge} is the optimized model{'' if judge == model_name else f' ({model_name})'}: a measure "
            f"judged by the network that was fooled means little; pick another network (e.g. --judge "
            f"{default_judge(model_name)})"
        )
    if is_user_model(judge):
        path = Path(_file_and_factory(judge)[0]).expanduser()
        if not path.is_file():
            raise FvoptError(f"judge {judge}: there is no file '{path}'")
    elif find_source(judge) is None:
        raise FvoptError(f"judge: {MODEL_SOURCES.unknown(judge, known=', '.join(known_models()))}")


def resolve_judge(judge: "str | FeatureModel | None", model: "str | FeatureModel", device="cpu") -> FeatureModel:
    """The judge network, refused in one line when it is the optimized network itself."""
    model_name = model if isinstance(model, str) else model.name
    if judge is None:
        judge = default_judge(model_name)
    if not isinstance(judge, (str, FeatureModel)):
        raise FvoptError(f"judge must be a model name such as 'lite1', not {type(judge).__name__} {judge!r}")
    same = judge is model if isinstance(judge, FeatureModel) else same_network(judge, model_name)
    if same or (isinstance(judge, FeatureModel) and isinstance(model, FeatureModel) and judge.net is model.net):
        name = judge if isinstance(judge, str) else judge.name
        raise FvoptError(
            f"judge {name} is the optimized model: a measure judged by the network that was fooled "
            f"means little; pick another network (e.g. --judge {default_judge(model_name)})"
        )
    return judge if isinstance(judge, FeatureModel) else load_model(judge, device=device)


def last_linear(model: FeatureModel) -> nn.Linear:
    """The network's last linear layer (its classifier), whose input is the penultimate feature vector."""
    linears = [m for m in model.net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise FvoptError(
            f"{model.name} has no linear classifier layer, so it has no penultimate features to judge "
            "with: pick another judge network"
        )
    return linears[-1]


def penultimate(model: FeatureModel, images: torch.Tensor, batch: int = 64, side: int | None = None) -> torch.Tensor:
    """(n, D) penultimate features of images resized to `side` (default: the judge's input size), on the
    CPU: the side its reference images were shown at, so that both are seen alike."""
    repeats = repeated_pictures(images)
    if repeats is not None:  # a control's picture repeated for every unit: each distinct one once
        firsts, inverse = repeats
        return penultimate(model, images[firsts], batch, side)[inverse]
    side = int(side or model.input_size)
    layer = last_linear(model)
    store: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda mod, inputs: store.append(inputs[0].detach().flatten(1)))
    out = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch):
                x = images[start : start + batch].to(model.device, torch.float32)
                if x.shape[-1] != side or x.shape[-2] != side:
                    x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
                store.clear()
                model(x)
                out.append(store[-1].float().cpu())
    finally:
        handle.remove()
    return torch.cat(out) if out else torch.zeros(0, layer.in_features)
