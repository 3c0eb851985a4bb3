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
from .transforms.fit import fit_transforms
from .transforms import Compose, show_at, standard_transforms

EVALUATOR_SEED = 20_231_123
EVALUATOR_DRAWS = 16


def score_images(
    model: FeatureModel,
    objective: Objective,
    images: torch.Tensor,
    draws: int = EVALUATOR_DRAWS,
    transforms: Compose | None = None,
    render: int | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image `value` (untransformed) and `robust_value` (mean over the fixed draws); with
    `render`, every image is shown to the network resized to that size, as the run showed it."""
    images = images.to(model.device, torch.float32)
    # the fixed draws are made for the images' size and channels, as the run's were (fvopt.transforms.fit)
    transforms = fit_transforms(transforms or standard_transforms(), tuple(images.shape[-2:]), images.shape[1])
    n = images.shape[0]
    slots = torch.arange(n, device=model.device) % objective.slots
    generator = torch.Generator().manual_seed(EVALUATOR_SEED)
    fixed = [transforms.sample(generator) for _ in range(draws)]
    repeats = repeated_pictures(images)  # judging's controls show one gray, noise or reference picture for many units
    with torch.no_grad(), capture(model, objective.layers) as cap:

        def value(x: torch.Tensor) -> torch.Tensor:
            acts = _activations(cap, show_at(x, render), repeats)
            return objective(Activations(acts, images, slots, n, cap.layouts))

        plain = value(images)
        robust = (
            torch.stack([value(transforms.apply(images, d)) for d in fixed]).mean(0)
            if fixed
            else torch.full_like(plain, float("nan"))
        )
    return {"value": plain.cpu(), "robust_value": robust.cpu()}


def repeated_pictures(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(the first row of each distinct picture, the distinct picture of each row) when some rows of a batch repeat
    a picture, else None: what a pass needs to run each picture once (judging's controls repeat theirs)."""
    if images.shape[0] < 2:
        return None
    _, inverse = torch.unique(images.flatten(1), dim=0, return_inverse=True)
    groups = int(inverse.max()) + 1
    if groups == images.shape[0]:
        return None
    rows = torch.arange(images.shape[0], device=inverse.device)
    firsts = torch.full((groups,), images.shape[0], dtype=torch.long, device=inverse.device).scatter_reduce(
        0, inverse, rows, reduce="amin"
    )
    return firsts, inverse


def _activations(cap, shown: torch.Tensor, repeats) -> dict[str, torch.Tensor]:
    """The captured activations of `shown`; where rows repeat a picture (checked again after the transforms, which
    may draw noise per image), each distinct picture goes through the network once and is read for every row."""
    if repeats is not None and shown.shape[0] == repeats[1].shape[0]:
        firsts, inverse = repeats
        distinct = shown[firsts]
        if bool((shown == distinct[inverse]).all()):
            return {k: v.index_select(0, inverse) for k, v in cap.run(distinct).items()}
    return cap.run(shown)


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """The images as an 8-bit PNG stores them (fvopt.io.images.to_uint8), back in [0,1]."""
    return images.detach().float().clamp(0, 1).mul(255).round().div(255)


def score_as_saved(
    model: FeatureModel,
    objective: Objective,
    images: torch.Tensor,
    draws: int = EVALUATOR_DRAWS,
    render: int | None = None,
) -> dict:
    """`value_8bit` and `robust_8bit` (batch means) and their per-image lists: the scores of the picture
    as saved, since that is what people look at and share; near-gray images can lose much of their
    activation to the rounding (one study image fell from 6.86 to 1.94)."""
    scores = score_images(model, objective, quantize_8bit(images), draws=draws, render=render)
    return {
        "value_8bit": float(scores["value"].mean()),
        "robust_8bit": float(scores["robust_value"].mean()),
        "per_image_8bit": {"value": scores["value"].tolist(), "robust_value": scores["robust_value"].tolist()},
    }


def top_classes(model: FeatureModel, images: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (probabilities, classes) of untransformed images at the model's input size."""
    probs, _ = class_probabilities(model, images)
    return probs.topk(k, dim=-1)


def high_frequency_share(images: torch.Tensor) -> torch.Tensor:
    """Per image: the share of spectral energy (mean removed) above half the Nyquist frequency.

    Noisy, adversarial-looking visualizations put much of their energy there; natural images little.
    """
    x = images.float() - images.float().mean(dim=(-2, -1), keepdim=True)
    spec = torch.fft.rfft2(x).abs().pow(2).sum(1)  # (n, h, w//2+1)
    fy = torch.fft.fftfreq(x.shape[-2], device=x.device).abs()[:, None]
    fx = torch.fft.rfftfreq(x.shape[-1], device=x.device)[None, :]
    high = torch.maximum(fy, fx) > 0.25
    return (spec[:, high].sum(-1) / spec.flatten(1).sum(-1).clamp_min(1e-12)).cpu()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean absolute difference of neighboring pixels (the `tv` regularizer's measure)."""
    from .objectives import image_total_variation

    return image_total_variation(images.float()).cpu()


def quality_measures(images: torch.Tensor, objective: Objective, transfer: FeatureModel | None = None) -> dict:
    """Means over the batch: high-frequency share, total variation, and for class targets the
    target class's probability under a second model (`transfer_prob`), when one is given."""
    out = {
        "high_freq_share": float(high_frequency_share(images).mean()),
        "total_variation": float(total_variation(images).mean()),
    }
    classes = next((c.indices for c in objective.checks if c.what == "class"), None)
    if transfer is not None and classes:
        out["transfer_prob"] = float(target_class_probability(transfer, images, classes)[0].mean())
    return out


def target_class_probability(
    model: FeatureModel, images: torch.Tensor, classes: "list[int] | tuple[int, ...]"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the probability of its target class under `model` and that class's rank (1 = top).

    Image i drives classes[i % len(classes)]. This is "transfer" (MaCo's transferability): the one
    definition, read by `quality_measures` (one network) and by fvopt.quality's transfer measure
    (several networks, with controls)."""
    probs, _ = class_probabilities(model, images)
    n = images.shape[0]
    p = probs[torch.arange(n), torch.tensor([classes[i % len(classes)] for i in range(n)])]
    return p, (probs > p[:, None]).sum(1) + 1


def class_probabilities(model: FeatureModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, top-1 classes) of images resized to the model's input size, on the CPU."""
    import torch.nn.functional as F

    x = images.to(model.device, torch.float32)
    if tuple(x.shape[-2:]) != model.input_hw:
        x = F.interpolate(x, size=model.input_hw, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        probs = model(x).softmax(-1).cpu()
    return probs, probs.argmax(-1)
