"""Atomic file writes: a file fvopt writes is either whole or absent, never half written.

Why: a scheduler ends a job with SIGTERM, then SIGKILL after a grace period (SLURM's KillWait,
`docker stop`'s 10 s); a second signal, or the kill, may land while the best image or its trace is
being written. Every file is written under a temporary name in the same folder (same file system),
then renamed onto its name with `os.replace`, which POSIX and Windows make atomic: a reader sees
the old file or the new one. On any failure, an interrupt included, the temporary file is removed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_in_progress = 0


def writing() -> bool:
    """True while an atomic write of this process is between its first byte and its rename."""
    return _in_progress > 0


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends normally.

    The temporary name keeps the extension, so writers that choose the format by it (Pillow,
    imageio) write the same format. It starts with a dot and holds the process id, so two
    processes writing the same name never share a temporary file.
    """
    global _in_progress
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    _in_progress += 1
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    finally:
        _in_progress -= 1


def write_text(path: str | Path, text: str) -> Path:
    """`path.write_text(text)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """`path.write_bytes(data)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
