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
