"""Image shapes: a side or a (height, width) pair, and the text forms `160` and `96x160`.

Why a module of its own: sizes enter fvopt from the CLI (`--size 96x160`), the Python API
(`size=(96, 160)`), bench specs and models (`input_size=`); one function checks them all the same
way, and everything below works with (height, width) pairs while a square keeps its plain int.
"""

from __future__ import annotations

import re
from typing import Union

from ..errors import FvoptError
from ..config.options import IMAGE_SIDE

Size = Union[int, tuple[int, int]]
_PAIR = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(value, what: str = "size") -> Size | None:
    """An image size from an int, a (height, width) pair or text ('160', '96x160'), each side checked
    (1..16384 px); a square pair comes back as its int, so square sizes keep their old form."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _PAIR.match(value)
        if match:
            value = (int(match.group(1)), int(match.group(2)))
        elif value.strip().isdigit():
            value = int(value.strip())
        else:
            raise FvoptError(
                f"{what} {value!r} is not allowed: give a side in px (e.g. 128) or HEIGHTxWIDTH (e.g. 96x160)"
            )
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise FvoptError(f"{what} {tuple(value)!r} is not allowed: give (height, width), two sides in px")
        h, w = (IMAGE_SIDE.coerce(f"{what} height" if i == 0 else f"{what} width", v) for i, v in enumerate(value))
        return h if h == w else (h, w)
    return IMAGE_SIDE.coerce(what, value)


def hw(size: Size) -> tuple[int, int]:
    """(height, width) of a size given as a side or a pair."""
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def describe(size: Size) -> str:
    """'128' for a square, '96x160' (height x width) otherwise: the form the CLI reads back."""
    h, w = hw(size)
    return str(h) if h == w else f"{h}x{w}"
