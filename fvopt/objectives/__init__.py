"""What to maximize: targets, regularizers, their algebra, and target strings.

An objective returns one value per image, higher is better. Only a strategy turns values into a
loss: averaging over the batch (as Lucent does) would make a population impossible to rank.

A batch can hold different targets: `channel("blocks.4", range(64))` gives image n the channel
`64 slot` n, so 64 channels are optimized in one batched run.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch

from ..runtime.device import cached
from ..errors import FvoptError
from ..models.hooks import LOGITS
from ..models.layouts import grid_of, positions, token_units, unit_at, unit_mean
from .core import (  # noqa: F401  (the objective's own names, read from here by most callers)
    MAX_INDEX,
    MAX_TARGET_LENGTH,
    TARGETS,
    Activations,
    Check,
    Indices,
    Objective,
    _merge_slots,
    _parse_indices,
    register_target,
)


def _index_tensor(indices: tuple[int, ...], a: Activations) -> torch.Tensor:
    table = cached(("indices", indices), a.slots.device, lambda: torch.tensor(indices))
    return table[a.slots % len(indices)]


def _as_tuple(indices: Indices) -> tuple[int, ...]:
    out = (int(indices),) if isinstance(indices, int) else tuple(int(i) for i in indices)
    if not out:
        raise FvoptError("an empty index list was given for a target")
    return out


def class_logit(classes: Indices) -> Objective:
    """The pre-softmax logit of an ImageNet class (a list gives one class per image slot)."""
    idx = _as_tuple(classes)
    label = _label(idx)
    return Objective(
        lambda a: a.acts[LOGITS].gather(1, _index_tensor(idx, a)[:, None])[:, 0],
        frozenset({LOGITS}),
        f"class:{label}",
        len(idx),
        (Check(LOGITS, idx, "class"),),
    )


def channel(layer: str, channels: Indices) -> Objective:
    """A unit averaged over spatial positions or patch tokens (prefix tokens excluded)."""
    idx = _as_tuple(channels)
    return Objective(
        lambda a: unit_mean(a.acts[layer], a.layout(layer)).gather(1, _index_tensor(idx, a)[:, None])[:, 0],
        frozenset({layer}),
        f"channel:{layer}:{_label(idx)}",
        len(idx),
        (Check(layer, idx, "channel"),),
    )


def neuron(layer: str, channels: Indices, y: int | None = None, x: int | None = None) -> Objective:
    """One unit at one spatial position or patch-grid cell, the center by default."""
    idx = _as_tuple(channels)

    def fn(a: Activations) -> torch.Tensor:
        act, layout = a.acts[layer], a.layout(layer)
        h, w = grid_of(act, layout)
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise FvoptError(f"neuron position ({yy}, {xx}) is outside {layer}'s {h}x{w} grid")
        return unit_at(act, layout, yy, xx).gather(1, _index_tensor(idx, a)[:, None])[:, 0]

    where = "" if y is None and x is None else f":{y}:{x}"
    position = None if y is None and x is None else (y, x)
    return Objective(
        fn,
        frozenset({layer}),
        f"neuron:{layer}:{_label(idx)}{where}",
        len(idx),
        (Check(layer, idx, "neuron", position),),
    )


def token(layer: str, units: Indices, index: int = 0) -> Objective:
    """A unit of one prefix token of a transformer layer (token 0: the class token)."""
    idx = _as_tuple(units)
    return Objective(
        lambda a: token_units(a.acts[layer], a.layout(layer), index).gather(1, _index_tensor(idx, a)[:, None])[:, 0],
        frozenset({layer}),
        f"token:{layer}:{_label(idx)}:{index}",
        len(idx),
        (Check(layer, idx, "token", (index, 0)),),
    )


def layer(name: str) -> Objective:
    """DeepDream's objective: the mean of the squared activations of a whole layer (patch tokens only)."""
    return Objective(
        lambda a: positions(a.acts[name], a.layout(name)).pow(2).flatten(1).mean(1),
        frozenset({name}),
        f"layer:{name}",
        checks=(Check(name, (), "layer"),),
    )


def direction(name: str, vector: Sequence[float] | torch.Tensor) -> Objective:
    """The projection of the units on a unit direction, averaged over positions or patch tokens."""
    vec = torch.as_tensor(vector, dtype=torch.float32)
    if vec.dim() != 1 or not torch.isfinite(vec).all() or float(vec.norm()) == 0:
        raise FvoptError(f"direction for {name} must be a finite, non-zero vector of numbers, not {vector!r}")
    vec = vec / vec.norm()

    def fn(a: Activations) -> torch.Tensor:
        feats = positions(a.acts[name], a.layout(name))  # (N, units, positions)
        v = cached(("direction", tuple(vec.tolist())), feats.device, lambda: vec)
        return torch.einsum("nup,u->np", feats, v.to(feats.dtype)).mean(1)

    return Objective(fn, frozenset({name}), f"direction:{name}", checks=(Check(name, (len(vec) - 1,), "direction"),))


def l1(constant: float = 0.5) -> Objective:
    """Mean absolute distance of the image from `constant` (mid-gray): subtract it to penalize."""
    return Objective(lambda a: (a.images - constant).abs().flatten(1).mean(1), frozenset(), "l1")


def l2(constant: float = 0.5) -> Objective:
    """Root mean squared distance from `constant` (mid-gray): subtract it to penalize."""
    return Objective(lambda a: (a.images - constant).pow(2).flatten(1).mean(1).add(1e-12).sqrt(), frozenset(), "l2")


def l1sum(constant: float = 0.5) -> Objective:
    """Sum (not mean) of |image - constant| over pixels and colors: the classic recipes' exact L1 term,
    whose weight then means what it means there (and scales with the image size, as it does there)."""
    return Objective(lambda a: (a.images - constant).abs().flatten(1).sum(1), frozenset(), _centered("l1sum", constant))


def l2sum(constant: float = 0.5) -> Objective:
    """Sum of squares of (image - constant) over pixels and colors, no root: the classic recipes'
    `- 0.0001*l2sum` (Simonyan et al.'s lambda * ||I||^2), which `l2` (an RMS) cannot express."""
    return Objective(
        lambda a: (a.images - constant).pow(2).flatten(1).sum(1), frozenset(), _centered("l2sum", constant)
    )


def _centered(name: str, constant: float) -> str:
    return name if constant == 0.5 else f"{name}:{constant:g}"


def image_total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per image: mean absolute difference of vertically plus horizontally neighboring pixels."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1) + (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(
        1
    ).mean(1)


def total_variation() -> Objective:
    """Mean absolute difference of neighboring pixels: subtract it for smoother images."""
    return Objective(lambda a: image_total_variation(a.images), frozenset(), "tv")


def diversity(name: str) -> Objective:
    """Similarity of an image's Gram matrix at `name` to the others of its group: subtract it.

    As in Lucid: the cosine similarity of normalized Gram matrices, summed over the other images.
    """

    def fn(a: Activations) -> torch.Tensor:
        flat = positions(a.acts[name], a.layout(name))  # (N, units, positions)
        n = flat.shape[0]
        grams = torch.nn.functional.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)
        grams = grams.view(n // a.group, a.group, -1)
        sims = grams @ grams.transpose(1, 2)  # (groups, g, g)
        return ((sims.sum(-1) - sims.diagonal(dim1=1, dim2=2)) / max(a.group - 1, 1)).reshape(n)

    return Objective(fn, frozenset({name}), f"diversity:{name}", checks=(Check(name, (), "diversity"),))


def _label(idx: tuple[int, ...]) -> str:
    if len(idx) > 2 and idx == tuple(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}-{idx[-1]}"
    return ",".join(map(str, idx))


# ---------------------------------------------------------------------------------------------
# Target strings: `class:8`, `channel:blocks.4:10`, `neuron:blocks.4:10:3:3`, `layer:blocks.4`,
# `channel:blocks.4:0-63`, `channel:blocks.4:10+0.5*channel:blocks.5:3`, `class:8-0.05*tv`.
# Each kind is registered with its usage; a new kind is one `register_target` call.

# A '+' or '-' starts a new term when a name or a coefficient ('0.5*') follows; otherwise a '-'
# between digits is an index range (`0-63`); the '-' of an exponent (`1e-4*l2sum`) starts nothing.
_TERM_START = re.compile(r"(?<!\de)(?=[+-]\s*(?:[A-Za-z]|\d+(?:\.\d*)?(?:e-?\d+)?\s*\*))")
_TERM = re.compile(r"^\s*([+-]?)\s*(?:(\d+(?:\.\d*)?(?:e-?\d+)?|\.\d+)\s*\*)?\s*(.+?)\s*$")


def parse_target(text: str) -> Objective:
    """Turn a target string into an Objective; a malformed string is an error naming the term."""
    if not isinstance(text, str):
        raise FvoptError(f"target must be a string such as 'class:8', not {type(text).__name__} {text!r}")
    if not text.strip():
        raise FvoptError("empty target: use e.g. class:8, channel:blocks.4:10, layer:blocks.4")
    if len(text) > MAX_TARGET_LENGTH:
        raise FvoptError(f"target is {len(text)} characters long; at most {MAX_TARGET_LENGTH}")
    if "@" in text:  # image paths (`invert:LAYER@photo.png`) are encoded so that '-' and ':' in them stay theirs
        from .image_targets import encode_paths

        text = encode_paths(text)
    total: Objective | None = None
    for raw in _TERM_START.split(text.strip()):
        if not raw.strip():
            continue
        match = _TERM.match(raw)
        if not match:
            raise FvoptError(f"cannot parse target term '{raw}' in '{text}'")
        sign, coef, body = match.groups()
        try:
            term = _parse_term(body, text)
        except FvoptError as err:  # say the image paths as the user wrote them
            if "@" not in text:
                raise
            from urllib.parse import unquote

            raise FvoptError(unquote(str(err))) from None
        weight = (-1.0 if sign == "-" else 1.0) * (float(coef) if coef else 1.0)
        if not math.isfinite(weight) or weight == 0:
            raise FvoptError(f"coefficient {coef} in target '{text}' must be a finite, non-zero number")
        if weight != 1.0:
            term = weight * term
        total = term if total is None else total + term
    if total is None:
        raise FvoptError(f"target '{text}' has no terms")
    return total


def _parse_term(body: str, target: str) -> Objective:
    kind, _, rest = body.partition(":")
    parts = rest.split(":") if rest else []
    if kind not in TARGETS:
        err = TARGETS.unknown(kind)
        raise FvoptError(str(err).replace(f"'{kind}'.", f"'{kind}' in '{target}'.", 1))
    entry = TARGETS[kind]
    if len(parts) not in entry.extra["fields"] or any(not p for p in parts):
        raise FvoptError(f"malformed target term '{body}' in '{target}': use {entry.extra['usage']}")
    return entry.obj(parts, target)


@register_target("class", "class:INDEX", (1,), "the pre-softmax logit of a class")
def _class_target(parts: list[str], target: str) -> Objective:
    return class_logit(_parse_indices(parts[0], "class index", target))


@register_target("channel", "channel:LAYER:INDEX", (2,), "a channel's mean over space")
def _channel_target(parts: list[str], target: str) -> Objective:
    return channel(parts[0], _parse_indices(parts[1], "channel", target))


@register_target("neuron", "neuron:LAYER:INDEX[:Y:X]", (2, 4), "one unit at one position (center by default)")
def _neuron_target(parts: list[str], target: str) -> Objective:
    y = x = None
    if len(parts) == 4:
        try:
            y, x = int(parts[2]), int(parts[3])
        except ValueError:
            raise FvoptError(f"neuron position must be integers in '{':'.join(parts)}' of '{target}'") from None
    return neuron(parts[0], _parse_indices(parts[1], "channel", target), y, x)


@register_target("token", "token:LAYER:UNIT[:K]", (2, 3), "a unit of prefix token K of a transformer layer (0: class)")
def _token_target(parts: list[str], target: str) -> Objective:
    index = _parse_indices(parts[2], "token index", target) if len(parts) == 3 else (0,)
    if len(index) != 1:
        raise FvoptError(f"token:LAYER:UNIT:K takes one token index K, not '{parts[2]}' in '{target}'")
    return token(parts[0], _parse_indices(parts[1], "unit", target), index[0])


@register_target("layer", "layer:LAYER", (1,), "the mean of squared activations (DeepDream)")
def _layer_target(parts: list[str], target: str) -> Objective:
    return layer(parts[0])


@register_target("direction", "direction:LAYER:v1,v2,...", (2,), "the projection on a direction in channel space")
def _direction_target(parts: list[str], target: str) -> Objective:
    try:
        vec = [float(v) for v in parts[1].split(",")]
    except ValueError:
        raise FvoptError(f"direction vector must be numbers in '{target}'") from None
    return direction(parts[0], vec)


@register_target("diversity", "diversity:LAYER", (1,), "Gram similarity to the other images of the batch (subtract)")
def _diversity_target(parts: list[str], target: str) -> Objective:
    return diversity(parts[0])


register_target("l1", "l1", (0,), "mean |image - gray| (subtract)")(lambda parts, target: l1())
register_target("l2", "l2", (0,), "RMS distance from gray (subtract)")(lambda parts, target: l2())


def _center(parts: list[str], target: str) -> float:
    """The optional center of a sum regularizer (`l2sum:0`); gray (0.5) when absent."""
    if not parts:
        return 0.5
    try:
        value = float(parts[0])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FvoptError(f"the center of '{target}' must be a finite number such as 0 or 0.5, not '{parts[0]}'")
    return value


register_target("l1sum", "l1sum[:CENTER]", (0, 1), "sum of |image - center| (gray by default; subtract)")(
    lambda parts, target: l1sum(_center(parts, target))
)
register_target("l2sum", "l2sum[:CENTER]", (0, 1), "sum of (image - center)^2 (gray by default; subtract)")(
    lambda parts, target: l2sum(_center(parts, target))
)
register_target("tv", "tv", (0,), "total variation (subtract)")(lambda parts, target: total_variation())
from . import image_targets  # noqa: E402,F401  (invert, caricature, accentuate: image-seeded kinds)

TARGET_KINDS = tuple(TARGETS.names(plugins=False))  # the built-in kinds


def validate(objective: Objective, model, size: int) -> None:
    """Check every layer, unit index and position of `objective` against `model` before any pass.

    One cheap shape probe per model and size (cached) gives each layer's layout; a fixed-size
    model is probed at its own input size, which is what its network sees.
    """
    from ..models.info import layer_info, num_classes

    for check in objective.checks:
        if check.layer == LOGITS:
            n = num_classes(model)
            bad = [i for i in check.indices if not 0 <= i < n]
            if bad:
                raise FvoptError(f"class {bad[0]} is out of range: {model.name} has {n} classes (0..{n - 1})")
            continue
        seen = model.input_size if model.fixed_size else size  # what the network sees
        info = layer_info(model, check.layer, seen)
        layout, units = info.layout, info.layout.units
        noun = "features" if layout.kind == "tokens" else "units" if layout.kind == "vector" else "channels"
        if check.what in ("channel", "neuron", "token"):
            bad = [i for i in check.indices if not 0 <= i < units]
            if bad:
                raise FvoptError(
                    f"unit {bad[0]} is out of range: layer {check.layer} of {model.name} has {units} "
                    f"{noun} (0..{units - 1}); its layout is {layout.describe()}"
                )
        if check.what == "direction" and check.indices[0] + 1 != units:
            raise FvoptError(
                f"direction has {check.indices[0] + 1} values: layer {check.layer} of {model.name} has {units} {noun}"
            )
        if check.what == "neuron" and layout.kind == "vector":
            raise FvoptError(
                f"neuron targets need positions, and layer {check.layer} is a vector of {units}: "
                f"use channel:{check.layer}:INDEX"
            )
        if check.what == "neuron" and check.position is not None:
            y, x = check.position
            h, w = layout.grid
            if not (0 <= y < h and 0 <= x < w):
                where = "patch grid" if layout.kind == "tokens" else "map"
                raise FvoptError(
                    f"neuron position ({y}, {x}) is outside the {h}x{w} {where} of {check.layer} "
                    f"at {seen} px (0..{h - 1}, 0..{w - 1})"
                )
        if check.what == "token":
            if layout.kind != "tokens" or not 0 <= check.position[0] < layout.prefix:
                has = f"{layout.prefix} prefix tokens" if layout.kind == "tokens" else f"layout {layout.describe()}"
                raise FvoptError(f"token {check.position[0]} is not a prefix token of layer {check.layer} ({has})")


def slot_labels(objective: Objective, batch: int) -> list[str]:
    """A short caption per image of a batch: the target index each slot holds."""
    from ..models.info import class_name

    multi = next((c for c in objective.checks if len(c.indices) > 1 and c.what != "direction"), None)
    if multi is None:
        return [objective.name] * batch
    out = []
    for n in range(batch):
        i = multi.indices[n % len(multi.indices)]
        out.append(f"{i} {class_name(i)}" if multi.what == "class" else f"{multi.layer}:{i}")
    return out
