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

Each part is an entry of `TRANSFORM_PARTS` (fvopt.registry): `register_transform("blur", "blur:S",
"...")` over a `build(token, value)` adds one, here or from another package through a
`fvopt.transforms` entry point. The built object needs `sample(generator)`, `apply(x, draw)` and
`describe()` (its grammar text, so a trace names it and the chain round-trips); the conformance
checks are `fvopt.testing.check_transform`. This module sits above fvopt.transforms.ops (the pure
torch operations), which never imports it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from ..errors import FvoptError, suggest
from ..registry import Registry
from .ops import (
    TRANSFORM_SETS,
    Affine,
    ColorAdjust,
    ColorJitter,
    Compose,
    Crops,
    Jitter,
    LucentTransforms,
    Noise,
    Pad,
    PerImage,
    UniformRotate,
    Zoom,
    keeps_size,
    standard_transforms,
)

NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
RANGE = re.compile(rf"^({NUMBER})(?:\.\.|-)({NUMBER})$")
# Every grammar part by name; `fvopt.transforms` entry points of installed packages add to it.
TRANSFORM_PARTS: Registry[Callable[[str, str], Any]] = Registry(
    "transform part", group="fvopt.transforms", home="fvopt.transforms.grammar"
)


def register_transform(name: str, usage: str, help: str, examples: tuple[str, ...] = ()) -> Callable:
    """Decorator over `build(token, value)`: the part `name:value` of a chain (usage e.g. "blur:S").

    `token` is the whole part as written (for error messages), `value` the text after the colon.
    `examples` are chains the conformance checks run (default: `usage` is not runnable, so give one).
    """
    return TRANSFORM_PARTS.register(name, help, examples=examples or (usage,), usage=usage)


def parts_usage() -> tuple[str, ...]:
    """The parts a chain may hold, as written (for error messages and help)."""
    return (*(TRANSFORM_PARTS[name].extra["usage"] for name in TRANSFORM_PARTS), "per-image", *TRANSFORM_SETS)


def _bad(token: str, why: str, list_parts: bool = False) -> FvoptError:
    parts = (
        f'. Parts: {", ".join(parts_usage())} (e.g. "pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,noise:0.02")'
        if list_parts
        else ""
    )
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


def _affine(token: str, value: str) -> Affine:
    f = _fields(token, value, 3)
    return Affine(_number(token, f[0], 0, 180), _number(token, f[1], 0, 0.5), *_range(token, f[2], 0.05, 20))


for _name, _usage, _help, _example, _build in (
    (
        "pad",
        "pad:P",
        "pad P px of gray on every side",
        "pad:12",
        lambda t, v: Pad(_number(t, v, 0, 4096, integer=True)),
    ),
    (
        "jitter",
        "jitter:D",
        "crop D px at a random offset (the image shrinks by D)",
        "jitter:8",
        lambda t, v: Jitter(_number(t, v, 1, 4096, integer=True)),
    ),
    (
        "scale",
        "scale:A-B",
        "zoom about the center by a factor uniform in [A, B], size kept",
        "scale:0.9-1.1",
        lambda t, v: Zoom(*_range(t, v, 0.05, 20)),
    ),
    (
        "rotate",
        "rotate:A..B",
        "rotate by an angle uniform in [A, B] degrees, size kept",
        "rotate:-10..10",
        lambda t, v: UniformRotate(*_range(t, v, -180, 180)),
    ),
    (
        "affine",
        "affine:D/T/A-B",
        "torchvision's RandomAffine: degrees D, translation T of the side, scale A-B",
        "affine:10/0.1/0.9-1.1",
        _affine,
    ),
    (
        "colorjitter",
        "colorjitter:B/C/S",
        "torchvision's ColorJitter brightness, contrast, saturation (no hue)",
        "colorjitter:0.2/0.2/0.2",
        lambda t, v: ColorAdjust(*(_number(t, f, 0, 1) for f in _fields(t, v, 3))),
    ),
    (
        "color",
        "color:G/O",
        "small per-channel gain G and offset O",
        "color:0.05/0.05",
        lambda t, v: ColorJitter(*(_number(t, f, 0, 1) for f in _fields(t, v, 2))),
    ),
    ("noise", "noise:S", "additive Gaussian noise of sd S", "noise:0.02", lambda t, v: Noise(_number(t, v, 0, 10))),
    (
        "unoise",
        "unoise:S",
        "additive uniform noise of width S",
        "unoise:0.08",
        lambda t, v: Noise(_number(t, v, 0, 10), uniform=True),
    ),
    (
        "crops",
        "crops:N@A-B",
        "N random square crops per image, sides between A and B of the image's side",
        "crops:3@0.5-0.1",
        _crops,
    ),
):
    register_transform(_name, _usage, _help, (_example,))(_build)


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
        if kind not in TRANSFORM_PARTS:
            hint = suggest(kind, [*TRANSFORM_PARTS, *TRANSFORM_SETS]).strip()  # "Did you mean: pad?"
            raise _bad(token, f"unknown part; did{hint[3:-1]}" if hint else "unknown part", list_parts=True)
        if not sep:
            raise _bad(token, f"{kind} needs a value ({TRANSFORM_PARTS[kind].extra['usage']})")
        parts.append(TRANSFORM_PARTS[kind].obj(token, value))
    chain = Compose(tuple(parts))
    if sum(isinstance(p, Crops) for p in parts) > 1:
        raise _bad(text, "one crops part at most (its views multiply the batch)")
    if per_image:
        if not keeps_size(chain):
            raise _bad(
                text,
                "per-image draws need parts whose output size does not depend on the draw "
                "(the named set 'lucent' changes it; use 'default' or scale:A-B)",
            )
        return PerImage(chain)
    return chain


def make_transforms(spec: "str | Compose | LucentTransforms | None") -> Any:
    """A named set (`default`: Lucent's draws, size kept; `lucent`: Lucent's exact output sizes;
    `color`: default plus color jitter; `none`), a chain in the transform grammar
    (`"pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,noise:0.02,crops:6@0.5-0.05"`), or a
    transform object (returned as it is)."""
    if spec is None:
        return standard_transforms()
    if not isinstance(spec, str):
        if not (callable(getattr(spec, "sample", None)) and callable(getattr(spec, "apply", None))):
            raise FvoptError(
                f"transforms must be a name ({', '.join(TRANSFORM_SETS)}), a chain such as "
                f"'pad:12,jitter:8', or a transform object with sample() and apply(), not "
                f"{type(spec).__name__} {str(spec)[:60]!r}"
            )
        return spec
    if spec in TRANSFORM_SETS:
        return TRANSFORM_SETS[spec]()
    return parse_transforms(spec)
