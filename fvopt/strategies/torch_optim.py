"""`torch:<Name>`: any optimizer class of torch.optim, run as a first-order strategy.

The options of `torch:NAdam` are read from `torch.optim.NAdam`'s constructor: `lr` and every
keyword argument whose default says its type (a float, an int, a bool, a tuple of floats), with a
range where the default or the name implies one; torch's own checks of the values run once when
the strategy is built, so a bad value is refused before any model pass. Implementation switches
(`foreach`, `fused`, `capturable`, `differentiable`) and `maximize` (always on) are not options:
they do not change the recipe, or fvopt fixes them. One step is one `value_and_grad` and one
`optimizer.step()`, as for `adam` (`FirstOrder`), so the budget counts the same.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import FvoptError, suggest
from ..config.options import Option
from .base import Family, StepCost, named, register_family
from .first_order import DEFAULT_LR, RESULT, FirstOrder

FVOPT_ADAM_LR = DEFAULT_LR["adam"]

PREFIX = "torch:"
# Keyword arguments that pick an implementation, or that fvopt sets itself.
NOT_OPTIONS = ("params", "maximize", "foreach", "fused", "capturable", "differentiable")
# Classes that cannot run as one gradient step per iteration, and what to use instead.
REFUSED = {
    "LBFGS": "it needs a closure that evaluates several times per step: use the optimizer 'lbfgs' (fvopt's "
    "L-BFGS with a strong-Wolfe line search under one transform draw per step)",
    "SparseAdam": "it takes sparse gradients only, and an image's gradient is dense: use torch:Adam",
}
# Updates that mix the rows of the (batch, dim) point: with two or more images, the images would
# steer each other (Adafactor factors the second moment by rows and columns; Muon orthogonalizes).
COUPLES_IMAGES = ("Adafactor", "Muon")
# Known ranges by argument name; other numbers are >= 0 when their default is, and torch checks them.
UNIT = {
    "momentum": (0.0, 1.0, True),
    "dampening": (0.0, 1.0, False),
    "rho": (0.0, 1.0, False),
    "betas": (0.0, 1.0, True),
}
# Integer defaults that count something; any other integer default (weight_decay=0) is a float.
COUNTS = ("ns_steps",)


@dataclass(frozen=True)
class FloatTuple(Option):
    """A fixed number of floats, e.g. Adam's betas: `0.9,0.99` on the command line, a list in a spec."""

    length: int = 2

    def allowed(self) -> str:
        each = Option(float, self.low, self.high, self.low_open, self.high_open).allowed().removeprefix("a number")
        return f"{self.length} numbers separated by commas" + (f", each{each}" if each else "")

    def coerce(self, name: str, value: Any, where: str = "") -> tuple[float, ...]:
        label = f"{where} option {name}" if where else name
        bad = FvoptError(f"{label}={value!r} is not allowed: must be {self.allowed()}")
        items = value.strip().strip("()[]").split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or len(items) != self.length:
            raise bad
        each = Option(float, self.low, self.high, self.low_open, self.high_open)
        try:
            return tuple(each.coerce(name, item) for item in items)
        except FvoptError:
            raise bad from None


def optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """Every public torch.optim.Optimizer subclass in torch.optim, by class name."""
    out = {}
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if (
            not name.startswith("_")
            and inspect.isclass(cls)
            and issubclass(cls, torch.optim.Optimizer)
            and cls is not torch.optim.Optimizer
        ):
            out[name] = cls
    return out


def usable_names() -> list[str]:
    return sorted(n for n in optimizer_classes() if n not in REFUSED)


def _resolve(spec: str) -> type[torch.optim.Optimizer]:
    name = spec[len(PREFIX) :]
    classes = optimizer_classes()
    if name in REFUSED:
        raise FvoptError(f"optimizer '{spec}' cannot run here: {REFUSED[name]}")
    if name not in classes:
        known = [PREFIX + n for n in usable_names()]
        raise FvoptError(
            f"unknown torch optimizer '{spec}'.{suggest(spec, known)} torch.optim has: "
            f"{', '.join(PREFIX + n for n in usable_names())}"
        )
    return classes[name]


def _option_for(name: str, default: Any) -> Option | None:
    """An option typed by the constructor's default (None when the default says no type)."""
    low, high, high_open = UNIT.get(name, (None, None, False))
    if isinstance(default, bool):
        return Option(bool, help=f"default {default}")
    if (
        isinstance(default, tuple)
        and default
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in default)
    ):
        if low is None and all(x >= 0 for x in default):
            low = 0.0
        return FloatTuple(
            tuple,
            low,
            high,
            high_open=high_open,
            length=len(default),
            help=f"default {','.join(str(x) for x in default)}",
        )
    if isinstance(default, (int, float)):
        kind = int if isinstance(default, int) and name in COUNTS else float
        if name == "lr":
            return Option(float, low=0, low_open=True, help=f"learning rate (torch's default {default})")
        if low is None and default >= 0:
            low = 0.0
        return Option(kind, low, high, high_open=high_open, help=f"default {default}")
    return None  # None, a callable or a tensor default: left at torch's default


@functools.lru_cache(maxsize=None)
def constructor_defaults(spec: str) -> dict[str, Any]:
    """The keyword arguments of the class that are options, with torch's defaults."""
    params = inspect.signature(_resolve(spec).__init__).parameters
    return {
        k: p.default
        for k, p in params.items()
        if k != "self"
        and k not in NOT_OPTIONS
        and p.kind is not p.VAR_KEYWORD
        and p.kind is not p.VAR_POSITIONAL
        and _option_for(k, p.default) is not None
    }


def torch_options(spec: str) -> dict[str, Option]:
    """`lr`, the class's own typed keyword arguments, and `result`."""
    options = {k: _option_for(k, d) for k, d in constructor_defaults(spec).items()}
    return {**options, "result": RESULT}  # type: ignore[dict-item]


class TorchOptimizer(FirstOrder):
    """One torch.optim class with given keyword arguments, maximizing through `maximize=True`.

    A class without `maximize` gets the negated gradient and minimizes, which is the same step.
    """

    def __init__(self, spec: str, result: str | None = None, **kwargs: Any) -> None:
        super().__init__(result)
        self.cls = _resolve(spec)
        self.takes_maximize = "maximize" in inspect.signature(self.cls.__init__).parameters
        self.arguments = {**constructor_defaults(spec), **kwargs}
        # torch's own default learning rate, kept (a torch:<Name> is torch's optimizer as documented),
        # and said: NAdam's 0.002 steps about 25 times smaller than fvopt's adam (0.05)
        self.lr_source = "given" if "lr" in kwargs else "torch's default"
        try:  # torch's own value checks (betas < 1, eps >= 0, ...) now, not at the first step
            self.make_optimizer(torch.zeros(1, 2, requires_grad=True))
        except (ValueError, TypeError, RuntimeError) as err:
            given = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            first = str(err).splitlines()[0]
            raise FvoptError(f"optimizer '{spec}' refuses {given or 'its defaults'}: {first}") from None

    def check(self, param, batch: int, budget=None) -> StepCost:
        if batch > 1 and self.cls.__name__ in COUPLES_IMAGES:
            raise FvoptError(
                f"torch.optim.{self.cls.__name__} updates the whole (images, values) matrix at once, so "
                f"{batch} images would steer each other: run one image (--batch 1, one target)"
            )
        return super().check(param, batch, budget)

    def make_optimizer(self, z: torch.Tensor) -> torch.optim.Optimizer:
        return self.cls([z], **self.arguments, **({"maximize": True} if self.takes_maximize else {}))

    def process(self, grad: torch.Tensor) -> torch.Tensor:
        return grad if self.takes_maximize else -grad

    def status(self) -> dict:
        """The class that ran and every argument it got, torch's defaults included."""
        arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in self.arguments.items()}
        if self.takes_maximize:
            arguments["maximize"] = True
        return {
            "ran": f"torch.optim.{self.cls.__name__}",
            "arguments": arguments,
            "lr_source": self.lr_source,
            **super().status(),
        }

    def lr_note(self) -> str | None:
        """A line for the user when the learning rate is torch's default, which is on another scale
        than fvopt's own optimizers (None when the user gave lr)."""
        if self.lr_source == "given" or "lr" not in self.arguments:
            return None
        return (
            f"{self.name or 'torch:' + self.cls.__name__} runs at torch's default lr {self.arguments['lr']:g} "
            f"(fvopt's adam: {FVOPT_ADAM_LR:g}); give --lr (Python: lr=) for larger steps"
        )


def _build(spec: str, values: dict[str, Any]) -> TorchOptimizer:
    return named(TorchOptimizer(spec, **values), spec, values)


def _listing() -> list[tuple[str, str, dict[str, Option] | None]]:
    rows: list[tuple[str, str, dict[str, Option] | None]] = [
        (
            "torch:<Name>",
            "any torch.optim optimizer; options: lr, result, and its own keyword arguments. lr defaults to "
            f"torch's own (e.g. NAdam 0.002, about 25x smaller steps than fvopt's adam at {FVOPT_ADAM_LR:g}): "
            "give lr for fvopt's scale; the trace records lr_source",
            None,
        )
    ]
    for name in usable_names():
        rows.append((PREFIX + name, f"torch.optim.{name}", torch_options(PREFIX + name)))
    return rows


register_family(Family(PREFIX, "torch:<Name>", "torch:NAdam", torch_options, _build, _listing))
