"""The common evaluator: every final image is judged the same way, whatever optimized it.

The best value a strategy saw under random transforms is biased upward (lucky draws). Final
images are scored on the untransformed image and on a fixed set of transform draws that no
strategy sees: drawn once from EVALUATOR_SEED, identical for every run.
"""
from __future__ import annotations

import torch

from .models.hooks import capture
from .models.wrapper import FeatureModel
from .objectives import Activations, Objective
from .transforms import Compose, standard_transforms

EVALUATOR_SEED = 20_231_123
EVALUATOR_DRAWS = 16


def score_images(model: FeatureModel, objective: Objective, images: torch.Tensor, draws: int = EVALUATOR_DRAWS,
                 transforms: Compose | None = None) -> dict[str, torch.Tensor]:
    """Per-image `value` (untransformed) and `robust_value` (mean over the fixed draws)."""
    transforms = transforms or standard_transforms()
    images = images.to(model.device, torch.float32)
    n = images.shape[0]
    slots = torch.arange(n, device=model.device) % objective.slots
    generator = torch.Generator().manual_seed(EVALUATOR_SEED)
    fixed = [transforms.sample(generator) for _ in range(draws)]
    with torch.no_grad(), capture(model, objective.layers) as cap:
        def value(x: torch.Tensor) -> torch.Tensor:
            return objective(Activations(cap.run(x), images, slots, n))
        plain = value(images)
        robust = torch.stack([value(transforms.apply(images, d)) for d in fixed]).mean(0)
    return {"value": plain.cpu(), "robust_value": robust.cpu()}


def top_classes(model: FeatureModel, images: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (probabilities, classes) of untransformed images at the model's input size."""
    import torch.nn.functional as F

    x = images.to(model.device, torch.float32)
    if x.shape[-1] != model.input_size:
        x = F.interpolate(x, size=(model.input_size, model.input_size), mode="bilinear", antialias=True,
                          align_corners=False)
    with torch.no_grad():
        probs = model(x).softmax(-1)
    p, c = probs.topk(k, dim=-1)
    return p.cpu(), c.cpu()
