"""A small grammar for robustness transforms, so a recipe's transforms fit on a command line or
in a bench spec, and a trace can say exactly which ran.

    pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,jitter:4,noise:0.02,crops:6@0.5-0.05,per-image

Parts run left to right:

| part | meaning |
|---|---|
| `default`, `lucent`, `color`, `none` | the named sets (see fvopt.transforms.TRANSFORM_SETS) |
| `pad:P` | pad P px of gray on every side |
| `jitter:D` | crop D px at a random offset (the image shrinks by D) |
| `scale:A-B` | zoom about the center by a factor uniform in [A, B], size kept |
| `rotate:A..B` | rotate by an angle uniform in [A, B] degrees, size kept |
| `affine:D/T/A-B` | torchvision's RandomAffine: degrees D, translation T of the side, scale A-B |
| `colorjitter:B/C/S` | torchvision's ColorJitter brightness, contrast, saturation (no hue) |
| `color:G/O` | small per-channel gain G and offset O |
| `noise:S`, `unoise:S` | additive Gaussian noise of sd S; uniform noise of width S |
| `crops:N@A-B` | N random square crops per image, sides between A and B of the image's side |
| `per-image` | every image of the batch gets its own draw (default: one draw per batch) |
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

from .errors import FvoptError
from .transforms import (TRANSFORM_SETS, Affine, ColorAdjust, ColorJitter, Compose, Crops, Jitter, Noise, Pad,
                         PerImage, UniformRotate, Zoom, keeps_size)

NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
RANGE = re.compile(rf"^({NUMBER})(?:\.\.|-)({NUMBER})$")
PARTS = ("pad:P", "jitter:D", "scale:A-B", "rotate:A..B", "affine:D/T/A-B", "colorjitter:B/C/S", "color:G/O",
         "noise:S", "unoise:S", "crops:N@A-B", "per-image", *TRANSFORM_SETS)


def _bad(token: str, why: str, list_parts: bool = False) -> FvoptError:
    parts = (f". Parts: {', '.join(PARTS)} (e.g. \"pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,noise:0.02\")"
             if list_parts else "")
    return FvoptError(f"transform '{token}': {why}{parts}")


def _number(token: str, text: str, low: float, high: float, integer: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(token, f"'{text}' is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise _bad(token, f"{text} is outside {low:g}..{high:g}")
    if integer:
        if value != int(value):
            raise _bad(token, f"{text} must be a whole number")
        return int(value)
    return value


def _range(token: str, text: str, low: float, high: float) -> tuple[float, float]:
    match = RANGE.match(text)
    if not match:
        raise _bad(token, f"'{text}' is not a range A-B (or A..B)")
    a, b = (_number(token, g, low, high) for g in match.groups())
    if a > b:
        raise _bad(token, f"the range {text} runs backwards (write the smaller end first)")
    return a, b


def _fields(token: str, text: str, count: int) -> list[str]:
    fields = text.split("/")
    if len(fields) != count:
        raise _bad(token, f"needs {count} values separated by '/', got {len(fields)}")
    return fields


def _crops(token: str, text: str) -> Crops:
    count, _, sides = text.partition("@")
    if not sides:
        raise _bad(token, "write crops:N@A-B, e.g. crops:6@0.5-0.05")
    match = RANGE.match(sides)
    if not match:
        raise _bad(token, f"'{sides}' is not a range of side fractions A-B")
    a, b = (_number(token, g, 0.01, 1.0) for g in match.groups())
    return Crops(_number(token, count, 1, 64, integer=True), min(a, b), max(a, b))


BUILDERS: dict[str, Callable[[str, str], Any]] = {
    "pad": lambda t, v: Pad(_number(t, v, 0, 4096, integer=True)),
    "jitter": lambda t, v: Jitter(_number(t, v, 1, 4096, integer=True)),
    "scale": lambda t, v: Zoom(*_range(t, v, 0.05, 20)),
    "rotate": lambda t, v: UniformRotate(*_range(t, v, -180, 180)),
    "affine": lambda t, v: (lambda f: Affine(_number(t, f[0], 0, 180), _number(t, f[1], 0, 0.5),
                                             *_range(t, f[2], 0.05, 20)))(_fields(t, v, 3)),
    "colorjitter": lambda t, v: ColorAdjust(*(_number(t, f, 0, 1) for f in _fields(t, v, 3))),
    "color": lambda t, v: ColorJitter(*(_number(t, f, 0, 1) for f in _fields(t, v, 2))),
    "noise": lambda t, v: Noise(_number(t, v, 0, 10)),
    "unoise": lambda t, v: Noise(_number(t, v, 0, 10), uniform=True),
    "crops": _crops,
}


def parse_transforms(text: str) -> Any:
    """A chain from its grammar string; every value checked (range, finiteness) before any pass."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(str(text), "the transforms need a name or a chain", list_parts=True)
    tokens = [t.strip() for t in text.split(",")]
    per_image = "per-image" in tokens
    parts = []
    for token in tokens:
        if token == "per-image":
            continue
        if token in TRANSFORM_SETS:
            named = TRANSFORM_SETS[token]()
            parts.extend(named.transforms if isinstance(named, Compose) else (named,))
            continue
        kind, sep, value = token.partition(":")
        if kind not in BUILDERS or not sep:
            raise _bad(token, "unknown part" if kind not in BUILDERS else f"{kind} needs a value ({kind}:...)",
                       list_parts=kind not in BUILDERS)
        parts.append(BUILDERS[kind](token, value))
    chain = Compose(tuple(parts))
    if sum(isinstance(p, Crops) for p in parts) > 1:
        raise _bad(text, "one crops part at most (its views multiply the batch)")
    if per_image:
        if not keeps_size(chain):
            raise _bad(text, "per-image draws need parts whose output size does not depend on the draw "
                       "(the named set 'lucent' changes it; use 'default' or scale:A-B)")
        return PerImage(chain)
    return chain
