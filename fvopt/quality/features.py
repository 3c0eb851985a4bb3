"""The judge network: a second network whose penultimate features compare images.

A measure judged by the network that was optimized can be satisfied by the same adversarial
pattern that fooled it; a different network (by default the other EfficientNet-Lite) is a fairer
eye. Its penultimate features are the input of its last linear layer (the pooled features a
linear classifier reads), as in MaCo's plausibility.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FvoptError
from ..evaluate import repeated_pictures
from ..models import FeatureModel, load_model


def default_judge(model_name: str) -> str:
    """lite1 judges lite0; lite0 judges every other network."""
    return "lite1" if model_name == "lite0" else "lite0"


def resolve_judge(judge: "str | FeatureModel | None", model: "str | FeatureModel", device="cpu") -> FeatureModel:
    """The judge network, refused in one line when it is the optimized network itself."""
    model_name = model if isinstance(model, str) else model.name
    if judge is None:
        judge = default_judge(model_name)
    if not isinstance(judge, (str, FeatureModel)):
        raise FvoptError(f"judge must be a model name such as 'lite1', not {type(judge).__name__} {judge!r}")
    same = judge is model if isinstance(judge, FeatureModel) else judge == model_name
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
