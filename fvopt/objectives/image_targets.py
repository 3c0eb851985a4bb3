"""Image-seeded targets: feature inversion, caricature and feature accentuation of a user's photo.

    invert:LAYER@photo.png                     match the photo's activations at LAYER
    caricature:LAYER[:POW]@photo.png           Lucid's dot_compare: dot(photo, x) * max(0.1, proj)^POW
    accentuate:LAYER:UNIT[:REG[:ALPHA]]@p.png  raise UNIT while REG stays near the photo (faccent)

Each compares the image's activations with the photo's. The photo's activations are a reference
computed once per run (`bind_photos`, called by the Problem once the model and the image size are
known): the photo is resized to cover the run's image and center-cropped (`init_image.Photo`),
shown to the network as the run's images are (same render size), without the random transforms.
One consequence to know: a position-by-position comparison (invert) is exact only where the
transforms do not move the image; run inversion with `--transforms none` or small jitter.

Constants, and where they come from (checked in the published code; see README):
- caricature: Lucid's `lucid/recipes/caricature.py` `dot_compare`: dot = sum(photo * x) over every
  unit and position; "cossim" = dot / (1e-6 + |x|) (Lucid divides by the visualization's norm
  only, so this is |photo| times the cosine), floored at 0.1; value = dot * cossim^POW; POW 0 by
  default, as that recipe's `caricature(..., cossim_pow=0.0)`.
- accentuate: faccent (Hamblin et al. 2024) `render_vis(accent_reg_layer=..., accent_reg_alpha=1)`
  with `objectives.l2_compare`: the channel L2 distance between the image's and the photo's
  activations at REG, averaged over positions, subtracted with weight ALPHA (1 by default, as
  faccent). faccent also multiplies ALPHA by a balance measured once at its starting image (the
  ratio of the objective's and the term's summed parameter-gradient magnitudes); fvopt does not
  (that ratio depends on faccent's own parameterization and 16 transform copies), so ALPHA here is
  the plain weight. REG defaults to LAYER itself. Start from the photo (`--init`), as faccent does.
- invert: minus the relative L2 distance |x - photo| / |photo| at LAYER (0 at a perfect match).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import torch

from ..errors import FvoptError
from ..io.init_image import ARRAY_SUFFIXES, IMAGE_SUFFIXES, Photo
from ..models.layouts import positions, unit_mean
from .core import Activations, Check, Objective, _parse_indices, register_target

# `@path` inside a target string: up to the first image suffix followed by the end, a space or a
# new term. Paths are percent-encoded before the target is split into terms, so a '-' or ':' in a
# file name is never read as algebra or a field separator.
_SUFFIXES = "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES + ARRAY_SUFFIXES)
_PATH = re.compile(rf"@(.+?\.(?:{_SUFFIXES}))(?=\s*(?:$|[+-]))", re.IGNORECASE)


def encode_paths(text: str) -> str:
    """`invert:L@my-photo.png` -> `invert:L@my%2Dphoto.png`: safe to split on '+', '-' and ':'."""
    return _PATH.sub(lambda m: "@" + quote(m.group(1), safe="").replace("-", "%2D").replace(".", "%2E"), text)


class PhotoReference:
    """A photo's activations at some layers, for the run the objective is bound to."""

    def __init__(self, photo: Photo) -> None:
        self.photo = photo
        self.layers: set[str] = set()
        self.acts: dict[str, torch.Tensor] = {}
        self.key: tuple | None = None
        self.described: str | None = None

    def get(self, layer: str, like: torch.Tensor) -> torch.Tensor:
        if self.key is None or layer not in self.acts:
            raise FvoptError(
                f"the activations of image '{self.photo.path}' are not computed yet: image targets run "
                "inside a Problem (fvopt.Problem / visualize), which computes them once"
            )
        return self.acts[layer].to(like.device, like.dtype)


@dataclass(frozen=True)
class PhotoCheck(Check):
    """A layer a photo target reads, and the photo whose activations it needs there."""

    ref: PhotoReference | None = field(default=None, compare=False, hash=False)


def photo_references(objective: Objective) -> list[PhotoReference]:
    seen: dict[int, PhotoReference] = {}
    for check in objective.checks:
        if isinstance(check, PhotoCheck) and check.ref is not None:
            seen.setdefault(id(check.ref), check.ref)
    return list(seen.values())


def bind_photos(objective: Objective, model, size, render: int | None = None) -> list[str]:
    """Compute each photo's reference activations for `model` at image size `size` (one forward pass
    per photo, no gradient, not counted in the run's budget), shown to the network as the run shows
    its images (resized to `render` when given). The photo's channel count is checked against the
    network's first. Returns what each photo became, for the trace."""
    from ..models.hooks import capture
    from ..transforms import show_at

    out = []
    for ref in photo_references(objective):
        ref.photo.check_channels(getattr(model, "channels", 3), f"{model.name}'s input")
        key = (id(model), size, render, frozenset(ref.layers))
        if ref.key != key:
            image = ref.photo.at(size).to(model.device)
            with torch.no_grad(), capture(model, ref.layers) as cap:
                acts = cap.run(show_at(image, render))
            ref.acts = {name: a.detach() for name, a in acts.items()}
            ref.key = key
            ref.described = ref.photo.describe(size)
        out.append(ref.described)
    return out


def _split_photo(parts: list[str], usage: str, target: str) -> tuple[list[str], PhotoReference]:
    head, at, encoded = parts[-1].rpartition("@")
    if not at or not head or not encoded:
        raise FvoptError(f"target '{unquote(target)}' needs an image after '@': use {usage}")
    return parts[:-1] + [head], PhotoReference(Photo(unquote(encoded)))


def _number(text: str, what: str, target: str, low: float = -math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low:
        raise FvoptError(f"{what} '{text}' in target '{unquote(target)}' must be a finite number >= {low:g}")
    return value


def invert(layer: str, photo: str | Photo) -> Objective:
    """Feature inversion: minus |a(x) - a(photo)| / |a(photo)| at `layer` (0 when they match)."""
    ref = PhotoReference(photo if isinstance(photo, Photo) else Photo(photo))
    ref.layers.add(layer)

    def fn(a: Activations) -> torch.Tensor:
        x = positions(a.acts[layer], a.layout(layer)).flatten(1)
        r = positions(ref.get(layer, x), a.layout(layer)).flatten(1)
        return -(x - r).norm(dim=1) / r.norm(dim=1).clamp_min(1e-12)

    return Objective(
        fn, frozenset({layer}), f"invert:{layer}@{ref.photo.path}", checks=(PhotoCheck(layer, (), "photo", ref=ref),)
    )


MAX_COSSIM_POW = 10


def caricature(layer: str, photo: str | Photo, cossim_pow: float = 0.0) -> Objective:
    """Lucid's caricature (`dot_compare`): dot(a(photo), a(x)) * max(0.1, dot / |a(x)|)^cossim_pow.

    The power is at most MAX_COSSIM_POW: the factor is floored at 0.1 and dot / |a(x)| is tens to
    hundreds, so a larger power underflows or overflows float32 (1e6 made every value 0)."""
    if (
        isinstance(cossim_pow, bool)
        or not isinstance(cossim_pow, (int, float))
        or not 0 <= cossim_pow <= MAX_COSSIM_POW
    ):
        raise FvoptError(
            f"caricature cosine power {cossim_pow!r} is not allowed: must be a number in [0, {MAX_COSSIM_POW}] "
            f"(0.1^POW and (dot/|a|)^POW leave float32's range beyond it, and the value becomes 0 or inf)"
        )
    ref = PhotoReference(photo if isinstance(photo, Photo) else Photo(photo))
    ref.layers.add(layer)

    def fn(a: Activations) -> torch.Tensor:
        x = positions(a.acts[layer], a.layout(layer)).flatten(1)
        r = positions(ref.get(layer, x), a.layout(layer)).flatten(1)
        dot = (x * r).sum(1)
        if cossim_pow == 0:
            return dot
        cossim = (dot / (1e-6 + x.norm(dim=1))).clamp_min(0.1)
        return dot * cossim**cossim_pow

    pow_text = "" if cossim_pow == 0 else f":{cossim_pow:g}"
    return Objective(
        fn,
        frozenset({layer}),
        f"caricature:{layer}{pow_text}@{ref.photo.path}",
        checks=(PhotoCheck(layer, (), "photo", ref=ref),),
    )


def accentuate(
    layer: str, unit: int, photo: str | Photo, reg_layer: str | None = None, alpha: float = 1.0
) -> Objective:
    """Feature accentuation (faccent): unit `unit` of `layer` averaged over positions, minus `alpha`
    times the mean over positions of the channel L2 distance to the photo's activations at `reg_layer`."""
    reg = reg_layer or layer
    ref = PhotoReference(photo if isinstance(photo, Photo) else Photo(photo))
    ref.layers.add(reg)

    def fn(a: Activations) -> torch.Tensor:
        value = unit_mean(a.acts[layer], a.layout(layer))[:, unit]
        x = positions(a.acts[reg], a.layout(reg))  # (N, units, positions)
        r = positions(ref.get(reg, x), a.layout(reg))
        return value - alpha * (x - r).norm(dim=1).mean(1)

    return Objective(
        fn,
        frozenset({layer, reg}),
        f"accentuate:{layer}:{unit}:{reg}:{alpha:g}@{ref.photo.path}",
        checks=(Check(layer, (unit,), "channel"), PhotoCheck(reg, (), "photo", ref=ref)),
    )


@register_target("invert", "invert:LAYER@IMAGE", (1,), "feature inversion: match a photo's activations at LAYER")
def _invert_target(parts: list[str], target: str) -> Objective:
    (layer,), ref = _split_photo(parts, "invert:LAYER@IMAGE", target)
    return invert(layer, ref.photo)


@register_target(
    "caricature",
    "caricature:LAYER[:POW]@IMAGE",
    (1, 2),
    "Lucid's caricature: dot product with a photo's activations times cosine^POW (POW 0)",
)
def _caricature_target(parts: list[str], target: str) -> Objective:
    fields, ref = _split_photo(parts, "caricature:LAYER[:POW]@IMAGE", target)
    power = _number(fields[1], "cosine power", target, 0.0) if len(fields) == 2 else 0.0
    return caricature(fields[0], ref.photo, power)


@register_target(
    "accentuate",
    "accentuate:LAYER:UNIT[:REGLAYER[:ALPHA]]@IMAGE",
    (2, 3, 4),
    "feature accentuation: raise UNIT from a photo, REGLAYER kept near the photo's (faccent)",
)
def _accentuate_target(parts: list[str], target: str) -> Objective:
    fields, ref = _split_photo(parts, "accentuate:LAYER:UNIT[:REGLAYER[:ALPHA]]@IMAGE", target)
    unit = _parse_indices(fields[1], "unit", target)
    if len(unit) != 1:
        raise FvoptError(f"accentuate takes one unit, not '{fields[1]}' in '{unquote(target)}'")
    reg = fields[2] if len(fields) > 2 else None
    alpha = _number(fields[3], "alpha", target, 0.0) if len(fields) > 3 else 1.0
    return accentuate(fields[0], unit[0], ref.photo, reg, alpha)
