"""The one trace writer: strict JSON (a value that is not finite is written as null, never as NaN), written whole
or not at all, for `fvopt viz --trace` and `fvopt dream --trace` alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import FvoptError
from .atomic import write_text


def json_safe(value):
    """`value` with every non-finite float replaced by None, so the JSON is valid everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_trace(path: str | Path, trace: dict) -> Path:
    """Write `trace` to `path` atomically; an unwritable path is one line naming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(json_safe(trace), indent=1, allow_nan=False))
    except OSError as err:
        raise FvoptError(f"cannot write trace '{path}': {err.strerror or err}") from None
    return path
