"""The checks a declared setting runs on a value: each takes the setting's name and the value (text from the
command line or a TOML file, or a Python value) and returns it checked and typed, or raises one FvoptError line
naming the value and what is allowed. `None` never reaches a check: it means "the default"."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import FvoptError
from .options import IMAGE_SIDE, POSITIVE_INT, Option

Check = Callable[[str, Any], Any]


def by_option(option: Option) -> Check:
    """A number or a name checked by an Option: its type, range, finiteness and choices."""

    def check(name: str, value: Any) -> Any:
        return option.coerce(name, value)

    check.allowed = option.allowed()  # type: ignore[attr-defined]
    return check


def text(what: str) -> Check:
    """Any non-empty text (a name or a path checked later, where it is resolved)."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise FvoptError(f"{name}={value!r} is not allowed: must be {what}")
        return value

    check.allowed = what  # type: ignore[attr-defined]
    return check


def size(name: str, value: Any):
    """A side in px, or (height, width) / 'HxW'."""
    from ..io.canvas import parse_size

    return parse_size(value, name)


size.allowed = "a side in px or HEIGHTxWIDTH"  # type: ignore[attr-defined]


def number_or_word(word: str, option: Option = IMAGE_SIDE) -> Check:
    """A number checked by `option`, or one word (`lucent`, `auto`)."""

    def check(name: str, value: Any):
        if value == word:
            return value
        try:
            return option.coerce(name, value)
        except FvoptError:
            raise FvoptError(f"{name}={value!r} is not allowed: must be {option.allowed()} or '{word}'") from None

    check.allowed = f"{option.allowed()} or '{word}'"  # type: ignore[attr-defined]
    return check


render = number_or_word("lucent")
max_batch = number_or_word("auto", POSITIVE_INT)


def transforms(name: str, value: Any):
    """A named transform set or a chain, parsed now (fvopt.transforms.grammar) so a typo is refused before work."""
    from ..transforms import make_transforms

    if not isinstance(value, str):
        make_transforms(value)  # a Compose built in Python: checked by the grammar
        return value
    try:
        make_transforms(value)
    except FvoptError as err:
        raise FvoptError(f"{name}={value!r} is not allowed: {err}") from None
    return value


transforms.allowed = "default, lucent, color, none, or a chain such as 'pad:12,jitter:8'"  # type: ignore[attr-defined]


def measures(name: str, value: Any):
    """Quality measure names (comma-separated or a list), 'default', 'all' or 'none'."""
    from ..quality import parse_measures

    parse_measures(value)
    return value


measures.allowed = "comma-separated measure names, default, all or none"  # type: ignore[attr-defined]


def value_range(name: str, value: Any):
    from ..models.user import parse_range

    return parse_range(value)


value_range.allowed = "LO,HI with LO < HI"  # type: ignore[attr-defined]


def compile_mode(name: str, value: Any) -> str:
    from ..runtime.speed import check_compile_mode

    return check_compile_mode(value)


compile_mode.allowed = "off, default, reduce-overhead or max-autotune"  # type: ignore[attr-defined]


def of_type(kinds: type | tuple[type, ...], what: str) -> Check:
    """A Python value of one of `kinds` (an nn.Module, an Objective, a dict of options...), or text."""

    def check(name: str, value: Any):
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise FvoptError(f"{name} must be {what}, not {type(value).__name__} {value!r}")
        if not isinstance(value, kinds):
            raise FvoptError(f"{name} must be {what}, not {type(value).__name__} {value!r}")
        if isinstance(value, str) and not value.strip():
            raise FvoptError(f"{name}={value!r} is not allowed: must be {what}")
        return value

    check.allowed = what  # type: ignore[attr-defined]
    return check


def saying_allowed(check: Check) -> Check:
    """The check, its refusals ending with what the setting allows (the same words in every place it is given)."""

    def wrapped(name: str, value: Any) -> Any:
        try:
            return check(name, value)
        except FvoptError as err:
            words = allowed(check)
            if words and words in str(err):
                raise
            raise FvoptError(f"{err} (allowed: {words})") from None

    wrapped.allowed = allowed(check)  # type: ignore[attr-defined]
    wrapped.__doc__ = check.__doc__
    return wrapped


def device(name: str, value: Any) -> str:
    """auto, cpu, mps, cuda or cuda:N (whether it exists is checked when it is resolved, before the model loads)."""
    import re

    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value.strip()):
        raise FvoptError(f"{name}={value!r} is not allowed: must be {device.allowed}")  # type: ignore[attr-defined]
    return value.strip()


device.allowed = "auto, cpu, cuda, cuda:N or mps"  # type: ignore[attr-defined]


def allowed(check: Check) -> str:
    """What a check accepts, in words (for the table and the help)."""
    return getattr(check, "allowed", "")
