"""User-facing errors: one class, so the command line can turn them into one line and exit code 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class FvoptError(ValueError):
    """A bad input from the user: the message names the bad value and what is allowed."""


class NonFiniteError(FvoptError):
    """The objective or its gradient became NaN or infinite; the run keeps its best image."""


def suggest(name: str, known: Iterable[str], n: int = 5) -> str:
    """A ' Did you mean ...?' tail listing the closest known names, or '' if none is close."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def first_line(err: BaseException) -> str:
    """The first non-blank line of an exception's message (at most 200 characters), or its type's
    name: what a one-line refusal quotes of a library's error, its cause kept by `from err`."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)[:200]
