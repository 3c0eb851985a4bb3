"""The objective itself and the target-kind registry: what every kind of target is built from.

Kept apart from `objectives` (the built-in kinds and the target grammar) so that modules adding
kinds of their own (`image_targets`) import this and `objectives` imports them, without a cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..errors import FvoptError
from ..models.layouts import Layout
from ..registry import Registry

Indices = int | Sequence[int]


@dataclass
class Activations:
    """What an objective may read for N images: layer outputs, the images, and their target slots."""

    acts: dict[str, torch.Tensor]
    images: torch.Tensor  # (N, 3, H, W) untransformed images in [0,1]
    slots: torch.Tensor  # (N,) long: which target slot each image fills
    group: int  # images per candidate: terms that couple images (diversity) stay inside a group
    layouts: dict[str, Layout] = field(default_factory=dict)  # how each layer lays out its units

    def layout(self, layer: str) -> Layout:
        if layer not in self.layouts:
            raise FvoptError(f"no layout recorded for layer {layer}: activations must come from models.capture")
        return self.layouts[layer]


@dataclass(frozen=True)
class Check:
    """A validation a leaf target needs against the model: its layer exists, its index is in range."""

    layer: str
    indices: tuple[int, ...] = ()
    what: str = "channel"  # channel (unit indices), class, direction, layer, diversity, neuron, token
    position: tuple[int, int] | None = None  # neuron: the grid cell; token: (token index, 0)


@dataclass(frozen=True)
class Objective:
    fn: Callable[[Activations], torch.Tensor]
    layers: frozenset[str]
    name: str
    slots: int = 1  # how many different targets one batch holds
    checks: tuple[Check, ...] = field(default=())

    def __call__(self, a: Activations) -> torch.Tensor:
        return self.fn(a)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __str__(self) -> str:
        return self.name

    def _combine(self, other: "Objective", op, symbol: str) -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        slots = _merge_slots(self.slots, other.slots)
        return Objective(
            lambda a: op(self(a), other(a)),
            self.layers | other.layers,
            f"{self.name} {symbol} {other.name}",
            slots,
            self.checks + other.checks,
        )

    def __add__(self, other: "Objective") -> "Objective":
        return self._combine(other, torch.add, "+")

    def __sub__(self, other: "Objective") -> "Objective":
        return self._combine(other, torch.sub, "-")

    def __mul__(self, scalar: float) -> "Objective":
        if isinstance(scalar, Objective) or not isinstance(scalar, (int, float)):
            return NotImplemented
        return Objective(lambda a: scalar * self(a), self.layers, f"{scalar:g}*{self.name}", self.slots, self.checks)

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return -1.0 * self


def _merge_slots(a: int, b: int) -> int:
    if a == 1 or b == 1 or a == b:
        return max(a, b)
    raise FvoptError(f"cannot combine targets with {a} and {b} slots in one batch: use equal index lists")


# Every target kind by name; `fvopt.targets` entry points of installed packages add to it.
TARGETS: Registry[Callable[[list[str], str], Objective]] = Registry(
    "target kind", group="fvopt.targets", home="fvopt.objectives"
)
MAX_TARGET_LENGTH = 10_000
MAX_INDEX = 10**9


def register_target(name: str, usage: str, fields: tuple[int, ...], summary: str) -> Callable:
    """Make a target kind available in target strings as `name:...`.

    The decorated `build(fields, target)` gets the colon-separated fields after the kind (their
    count is one of `fields`) and the whole target string (for error messages).
    """
    return TARGETS.register(name, summary, examples=(usage,), usage=usage, fields=tuple(fields))


def _parse_indices(text: str, what: str, target: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise FvoptError(f"bad {what} '{text}' in target '{target}': use N, N-M or N,M,...")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise FvoptError(f"empty {what} range '{part}' in target '{target}'")
        if hi >= MAX_INDEX or hi - lo + len(out) >= 100_000:
            raise FvoptError(
                f"{what} '{part}' in target '{target}' is out of range: at most 100000 indices below {MAX_INDEX}"
            )
        out.extend(range(lo, hi + 1))
    return tuple(out)
