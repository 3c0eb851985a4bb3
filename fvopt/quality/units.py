"""Which unit an image of a run was driving, read from its target, and which measures apply to it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FvoptError
from ..models import LOGITS
from ..objectives import Objective, channel, class_logit, parse_target


@dataclass(frozen=True)
class Unit:
    kind: str  # "channel" or "class"
    layer: str  # a layer name, or LOGITS for classes
    indices: tuple[int, ...]  # one per target slot

    def index_of(self, image: int) -> int:
        return self.indices[image % len(self.indices)]

    def objective(self, n_images: int) -> Objective:
        """The bare unit (no regularizer terms) for n images, image i driving slot i."""
        per_image = [self.index_of(i) for i in range(n_images)]
        return class_logit(per_image) if self.kind == "class" else channel(self.layer, per_image)

    def label(self, image: int) -> str:
        return (
            f"class:{self.index_of(image)}" if self.kind == "class" else f"channel:{self.layer}:{self.index_of(image)}"
        )


def as_objective(target: "str | Objective") -> Objective:
    if isinstance(target, Objective):
        return target
    if not isinstance(target, str):
        raise FvoptError(f"target must be a target string or an Objective, not {type(target).__name__} {target!r}")
    return parse_target(target)


def unit_of(target: "str | Objective") -> tuple[Unit | None, str]:
    """(the single unit the target drives, '') or (None, why the unit measures cannot apply).

    Regularizer terms (tv, l1, ...) are ignored: the unit is what they regularize.
    """
    objective = as_objective(target)
    checks = [c for c in objective.checks]
    if len(checks) != 1:
        return None, (
            f"target {objective} drives {len(checks)} units; the reference measures judge one channel: "
            "or class: unit per image"
            if checks
            else f"target {objective} drives no unit"
        )
    c = checks[0]
    if c.what == "class" and c.layer == LOGITS:
        return Unit("class", LOGITS, c.indices), ""
    if c.what == "channel":
        return Unit("channel", c.layer, c.indices), ""
    return None, (f"the reference measures judge channel: and class: targets; {objective} is a {c.what} target")


def image_labels(target: "str | Objective", n_images: int) -> list[str]:
    """What each image of a batch drives, as one label used everywhere a trace names it (the final
    scores' and the quality measures' `per_image.unit`): the unit as a target string (`channel:blocks.3:0`,
    `class:8`), or the whole target where it drives no single unit per image."""
    unit, _ = unit_of(target)
    if unit is None:
        return [str(as_objective(target))] * n_images
    return [unit.label(i) for i in range(n_images)]
