"""How a layer lays out its output, so that objectives read units, not axes.

A CNN layer gives (N, C, H, W); Swin stages and some ConvNeXt blocks give (N, H, W, C); a vision
transformer block gives tokens (N, L, D) whose first k tokens (class, distillation, register
tokens) are not patches; a head gives (N, D). Averaging "over space" with the NCHW assumption on a
transformer silently averages features of one token. Here the layout is detected once per layer
(two shape probes at different input sizes tell spatial axes from unit axes; a fixed-size model
falls back to its declared prefix tokens and a square patch grid) and recorded on the model;
objectives call `unit_mean`, `unit_at`, `token_units` and `positions` through it.

Rule for layers that return several things: a tuple or list whose first element is a tensor is
read as that tensor (an attention module's output before its weights, an LSTM's output); a dict or
anything else is refused with what it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import FvoptError

KINDS = ("nchw", "nhwc", "tokens", "vector")


@dataclass(frozen=True)
class Layout:
    kind: str  # one of KINDS
    units: int  # channels, or features per token
    grid: tuple[int, int] | None = None  # spatial positions, or the patch grid of the tokens
    prefix: int = 0  # leading tokens that are not patches (class, distillation, registers)

    def describe(self) -> str:
        if self.kind == "vector":
            return f"vector {self.units}"
        h, w = self.grid
        if self.kind == "tokens":
            return f"tokens {self.prefix}+{h}x{w} x {self.units}"
        return f"{self.kind} {self.units}x{h}x{w}"


def output_tensor(output, layer: str) -> torch.Tensor:
    """The tensor a hook reads from a layer's output, by the documented rule (see module docstring)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict):
        what = "a dict with keys " + ", ".join(map(str, list(output)[:8]))
    elif isinstance(output, (tuple, list)):
        what = f"a {type(output).__name__} of " + ", ".join(type(o).__name__ for o in output[:8])
    else:
        what = type(output).__name__
    raise FvoptError(
        f"layer {layer} returns {what}, which cannot be read as a feature map: pick a layer inside "
        "it or after it (fvopt layers MODEL --all lists them)"
    )


def detect(shape_a: tuple[int, ...], shape_b: tuple[int, ...] | None, prefix_tokens: int, layer: str) -> Layout:
    """The layout of one output, from its shape (batch dim dropped) at two input sizes.

    `shape_b` is None for fixed-size models (position embeddings): then the patch grid must be
    square after `prefix_tokens`, and 4-D outputs are read by which axes are equal.
    """
    a = tuple(shape_a)
    if len(a) == 1:
        return Layout("vector", a[0])
    if len(a) == 3:  # a 4-D output: the axes that follow the input size are the spatial ones
        if shape_b is not None and len(shape_b) == 3:
            changed = tuple(i for i in range(3) if a[i] != shape_b[i])
            if changed == (1, 2):
                return Layout("nchw", a[0], (a[1], a[2]))
            if changed == (0, 1):
                return Layout("nhwc", a[2], (a[0], a[1]))
            if changed == () and a[1] == a[2] == 1:  # a global pool kept as (C, 1, 1)
                return Layout("nchw", a[0], (1, 1))
        elif a[1] == a[2] and a[0] != a[1]:  # a fixed-size model: the two equal axes are the square map
            return Layout("nchw", a[0], (a[1], a[2]))
        elif a[0] == a[1] and a[2] != a[0]:
            return Layout("nhwc", a[2], (a[0], a[1]))
        raise FvoptError(
            f"layer {layer} has an output of shape {a} whose spatial axes fvopt cannot tell from its channels"
        )
    if len(a) == 2:
        tokens, units = a
        grid = _patch_grid(tokens, prefix_tokens)
        if grid is None:
            raise FvoptError(
                f"layer {layer} outputs {tokens} tokens of {units} features, which do not form a square "
                f"patch grid after {prefix_tokens} prefix tokens: fvopt cannot tell patches apart"
            )
        return Layout("tokens", units, grid, prefix_tokens)
    raise FvoptError(
        f"layer {layer} has an output of shape {a}, which fvopt cannot read as a feature map, tokens or a vector"
    )


def _patch_grid(tokens: int, prefix: int) -> tuple[int, int] | None:
    side = math.isqrt(tokens - prefix) if tokens > prefix else 0
    return (side, side) if side and side * side == tokens - prefix else None


def grid_of(act: torch.Tensor, layout: Layout) -> tuple[int, int]:
    """The (rows, columns) of positions in this activation (it follows the image size)."""
    if layout.kind == "nchw":
        return tuple(act.shape[-2:])
    if layout.kind == "nhwc":
        return tuple(act.shape[1:3])
    if layout.kind == "tokens":
        grid = _patch_grid(act.shape[1], layout.prefix)
        if grid is None:
            raise FvoptError(
                f"{act.shape[1]} tokens do not form a square patch grid after {layout.prefix} prefix tokens"
            )
        return grid
    raise FvoptError("a vector layer has no positions")


def unit_mean(act: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(N, units): each unit averaged over spatial positions or patch tokens (prefix tokens excluded)."""
    if layout.kind == "nchw":
        return act.mean(dim=(2, 3))
    if layout.kind == "nhwc":
        return act.mean(dim=(1, 2))
    if layout.kind == "tokens":
        return act[:, layout.prefix :, :].mean(1)
    return act


def unit_at(act: torch.Tensor, layout: Layout, y: int, x: int) -> torch.Tensor:
    """(N, units) at one spatial position or patch-grid cell."""
    if layout.kind == "nchw":
        return act[:, :, y, x]
    if layout.kind == "nhwc":
        return act[:, y, x, :]
    if layout.kind == "tokens":
        return act[:, layout.prefix + y * grid_of(act, layout)[1] + x, :]
    raise FvoptError("a vector layer has no positions")


def token_units(act: torch.Tensor, layout: Layout, token: int) -> torch.Tensor:
    """(N, units) of one prefix token (0 is the class token in ViT, DeiT and DINOv2)."""
    return act[:, token, :]


def positions(act: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(N, units, positions): every spatial position or patch token, units first (Gram matrices)."""
    if layout.kind == "nchw":
        return act.flatten(2)
    if layout.kind == "nhwc":
        return act.flatten(1, 2).transpose(1, 2)
    if layout.kind == "tokens":
        return act[:, layout.prefix :, :].transpose(1, 2)
    return act[:, :, None]
