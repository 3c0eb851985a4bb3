"""Robustness transforms, the public face: the operations (fvopt.transforms.ops: batched,
differentiable, pure torch, sampled first and applied second) and their names (the grammar of
fvopt.transforms.grammar, `make_transforms`).

Why two modules behind one: the operations never need to know how they are written on a command
line, and the grammar needs the operations, so each imports only downward; this module gathers
both for the callers that want a chain by name (`make_transforms("pad:12,jitter:8")`).
"""

from __future__ import annotations

from .grammar import TRANSFORM_PARTS, make_transforms, parse_transforms, register_transform
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
    RandomRotate,
    RandomScale,
    UniformRotate,
    Zoom,
    describe_transforms,
    keeps_size,
    show_at,
    standard_transforms,
    views_of,
    with_output_size,
)

__all__ = [
    "TRANSFORM_PARTS",
    "TRANSFORM_SETS",
    "Affine",
    "ColorAdjust",
    "ColorJitter",
    "Compose",
    "Crops",
    "Jitter",
    "LucentTransforms",
    "Noise",
    "Pad",
    "PerImage",
    "RandomRotate",
    "RandomScale",
    "UniformRotate",
    "Zoom",
    "describe_transforms",
    "keeps_size",
    "make_transforms",
    "parse_transforms",
    "register_transform",
    "show_at",
    "standard_transforms",
    "views_of",
    "with_output_size",
]
