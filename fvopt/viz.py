"""`visualize`: one call from names to a finished, scored visualization (what `fvopt viz` runs)."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .errors import FvoptError
from .evaluate import score_images
from .images import save_images
from .models import FeatureModel, load_model, resolve_device
from .objectives import Objective, parse_target, slot_labels
from .params import Parameterization, make_param
from .problem import Budget, Problem
from .run import RunResult, run
from .strategies import make_strategy
from .transforms import make_transforms

DEFAULT_STEPS = 256
DEFAULT_ZERO_ORDER_PARAM = "fft:k=8"


@dataclass
class Visualization:
    images: torch.Tensor  # (batch, 3, H, W) in [0,1]
    labels: list[str]
    trace: dict
    result: RunResult
    model: FeatureModel

    def save(self, path: str | Path) -> Path:
        return save_images(self.images, path, self.labels if self.images.shape[0] > 1 else None)

    def save_trace(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.trace, indent=1))
        return path


def visualize(
    model: str | FeatureModel = "lite0",
    target: str | Objective = "class:8",
    param: str | Parameterization | None = None,
    optimizer: str = "adam",
    *,
    lr: float | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    forwards: int | None = None,
    passes: int | None = None,
    size: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    device: str = "auto",
    transforms: str | None = "default",
    grad: str | None = None,
    options: dict | None = None,
    weights: str | None = None,
    progress: bool = False,
    snapshot_every: int = 0,
    snapshot_dir: str | Path | None = None,
    max_batch: int = 32,
) -> Visualization:
    """Optimize images until `target` fires, and score them with the common evaluator.

    Zero-order optimizers default to the low-dimensional `fft:k=8`, gradient methods to `fft`.
    The budget defaults to 256 steps; any of steps, seconds, forwards, passes may be combined.
    """
    torch.manual_seed(seed)
    dev = resolve_device(device)
    net = model if isinstance(model, FeatureModel) else load_model(model, weights=weights, device=dev)
    objective = target if isinstance(target, Objective) else parse_target(target)
    strategy = make_strategy(optimizer, lr=lr, **(options or {}))
    size = size or net.input_size
    if size < 1:
        raise FvoptError(f"image size must be positive, not {size}")
    if param is None:
        param = DEFAULT_ZERO_ORDER_PARAM if strategy.zero_order else "fft"
    parameterization = make_param(param, size)
    image_grad = None
    if grad:
        from .gradients import make_image_grad
        image_grad = make_image_grad(grad)
    problem = Problem(net, objective, parameterization, make_transforms(transforms), batch, seed, max_batch, image_grad)
    if all(v is None for v in (steps, seconds, forwards, passes)):
        steps = DEFAULT_STEPS
    budget = Budget(steps, seconds, forwards, passes)
    result = run(problem, strategy, budget, progress=progress, desc=f"{optimizer} {objective}",
                 snapshot_every=snapshot_every, snapshot_dir=snapshot_dir)
    scores = score_images(net, objective, result.images)
    labels = slot_labels(objective, problem.batch)
    trace = {
        "model": net.name, "target": str(objective), "optimizer": optimizer, "param": parameterization.name,
        "param_dim": parameterization.dim, "seed": seed, "size": size, "batch": problem.batch, "lr": lr,
        "options": options or {}, "grad": grad, "transforms": transforms, "device": str(dev),
        "stop_reason": result.stop_reason, "forwards": result.forwards, "backwards": result.backwards,
        "seconds": result.seconds, **result.extra,
        "versions": {"fvopt": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "steps": result.trace,
        "final": {"value": float(scores["value"].mean()), "robust_value": float(scores["robust_value"].mean()),
                  "per_image": {"value": scores["value"].tolist(), "robust_value": scores["robust_value"].tolist(),
                                "labels": labels}},
    }
    return Visualization(result.images, labels, trace, result, net)
