"""File names made from what a model, a target or a user supplies, kept inside the folder they go to.

A layer may be named `/tmp/x/EVIL`, `..` or `a/b` (a `.pt2` program or a factory file can name it anything):
joined to an output folder as it is, such a name writes outside it. Every name derived from such a string goes
through `safe_name` (one path component, letters, digits, '.', '_' and '-' only, never '.' or '..'), and a
writer that joins several parts checks the result with `inside`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import FvoptError

# a name kept as it is: no separator, no leading dot (so never '.', '..' or a hidden file), not too long
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def slug(text: str) -> str:
    """`text` as a file-name part: runs of anything but letters, digits, '.', '_', '-' become '_'; never '.' or
    '..' (those become '_'). Different texts may share a slug: use `safe_name` where they must not."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return "_" if out in (".", "..") else out


def safe_name(text: str) -> str:
    """`text` as one path component: unchanged when it already is a plain file name (e.g. `blocks.3`, `adam`), else
    its slug (at most 100 characters) and 8 hex digits of its hash, so that two names never share a file."""
    text = str(text)
    if _PLAIN.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{(slug(text)[:100].lstrip('.') or '_')}-{digest}"  # no leading dot: never a hidden file


def inside(folder: "str | Path", *parts: str) -> Path:
    """`folder / parts...`, refused in one line when it would lie outside `folder` (an absolute part, '..')."""
    base = Path(folder).resolve()
    path = Path(folder).joinpath(*parts)
    if not path.resolve().is_relative_to(base):
        raise FvoptError(f"refused to write '{path}': it lies outside the output folder '{folder}'")
    return path
