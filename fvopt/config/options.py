"""Typed, range-checked options: one place where every number and name a user gives is checked.

The command line hands over text (`--option popsize=40`), the Python API and TOML specs hand over
values; both go through `Option.coerce`, so `popsize=abc`, `lr=nan`, `steps=2.5` or `sigma=-1`
are refused the same way everywhere, with one line naming the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import FvoptError, suggest

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass(frozen=True)
class Option:
    """One option: its type, its allowed range or choices, and a short help text.

    `low`/`high` bound numbers; `low_open`/`high_open` make a bound exclusive. Floats are always
    required to be finite: a NaN step size or an infinite budget never stops or never moves.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    help: str = ""

    def allowed(self) -> str:
        """What the option accepts, in words, for error messages and help."""
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = "an integer" if self.kind is int else "a number" if self.kind is float else "text"
        if self.low is not None and self.high is not None:
            left, right = ("(" if self.low_open else "["), (")" if self.high_open else "]")
            return f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_number(self.high)}"
        return noun

    def coerce(self, name: str, value: Any, where: str = "") -> Any:
        """`value` (text or a Python value) as this option's type, or an FvoptError naming it."""
        label = f"{where} option {name}" if where else name
        bad = FvoptError(f"{label}={value!r} is not allowed: must be {self.allowed()}")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                return value.strip().lower() in _TRUE
            raise bad
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = float(value.strip()) if self.kind is float else _int_text(value)
            except ValueError:
                raise bad from None
        if self.kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise bad
        elif self.kind is float:
            if not isinstance(value, (int, float)):
                raise bad
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise bad
        return value


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _int_text(text: str) -> int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        as_float = float(text)  # "1e3" is an integer written as a float
        if not as_float.is_integer():
            raise
        return int(as_float)


def coerce_options(options: Mapping[str, Any], allowed: Mapping[str, Option], where: str) -> dict[str, Any]:
    """Check names and values of `options` against `allowed`; None values mean "the default"."""
    out = {}
    for name, value in options.items():
        if value is None:
            continue
        if name not in allowed:
            takes = ", ".join(f"{k} ({o.allowed()})" for k, o in allowed.items()) or "no options"
            raise FvoptError(f"{where} does not take option '{name}'.{suggest(name, allowed)} It takes: {takes}")
        out[name] = allowed[name].coerce(name, value, where)
    return out


def parse_options(spec: str, allowed: Mapping[str, Option], what: str) -> dict[str, Any]:
    """'k=8,decay=1.0' -> {'k': 8, 'decay': 1.0}, each checked against `allowed` names, types and ranges."""
    raw: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise FvoptError(f"option '{item}' of {what} must be KEY=VALUE")
        if key in raw:
            raise FvoptError(f"option '{key}' of {what} is given twice")
        raw[key] = value.strip()
    return coerce_options(raw, allowed, what)


def merge_options(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """Merge option dicts; one name given twice with two different values is an error."""
    out: dict[str, Any] = {}
    for source in sources:
        for name, value in source.items():
            if value is None:
                continue
            if name in out and out[name] != value:
                raise FvoptError(f"option {name} is given twice, as {out[name]!r} and {value!r}: give it once")
            out[name] = value
    return out


# Shared checks for the arguments every entry point takes (CLI, Python API, specs).
POSITIVE_INT = Option(int, low=1)
POSITIVE_FLOAT = Option(float, low=0, low_open=True)
SEED = Option(int, low=0, high=2**31 - 1, help="random seed")
MAX_IMAGE_SIDE = 16384  # 3 x 16384^2 float32 is 3 GB for the image alone
IMAGE_SIDE = Option(int, low=1, high=MAX_IMAGE_SIDE, help="image side in px")


def check(name: str, value: Any, option: Option) -> Any:
    """Coerce one named argument; None passes through (it means "the default")."""
    return None if value is None else option.coerce(name, value)


def check_type(name: str, value: Any, kinds: type | tuple[type, ...], what: str) -> None:
    """A wrong Python type at the API is an FvoptError naming it, not a TypeError deep inside."""
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in _as_tuple(kinds):
        raise FvoptError(f"{name} must be {what}, not {type(value).__name__} {value!r}")


def _as_tuple(kinds: type | Iterable[type]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)  # type: ignore[return-value]
