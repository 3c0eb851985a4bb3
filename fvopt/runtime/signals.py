"""SIGTERM and SIGHUP handled as Ctrl-C is: a scheduler's stop keeps the work done so far.

Why: SLURM, `timeout`, `docker stop` and systemd end a job with SIGTERM, then SIGKILL after a
grace period. Python's default for SIGTERM is to die on the spot, which lost the best image and
its trace although Ctrl-C kept both. `Terminated` is a KeyboardInterrupt, so every place that
keeps the work on Ctrl-C (the run loop, DeepDream, the bench runner) keeps it on SIGTERM too, and
the run loop names it (`stop_reason` "terminated").

Only the command line installs the handlers (`install()`); the Python API leaves the process's
signal handling as it found it. Only the first stop signal raises: after it the process is already
keeping its work and leaving, so a second SIGTERM (`timeout` and impatient users send several)
does not cut the scoring or the writing short, nor the interpreter's exit (it is ignored from then
on: see `_ignore_later_stops`); the scheduler's SIGKILL still ends the process, and the atomic
writes (fvopt/io/atomic.py) then leave each file whole or absent.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = ("SIGTERM", "SIGHUP")
received: int | None = None  # the first stop signal this process received (set by the handler)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGHUP once the command line installed its handler."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame) -> None:
    global received
    if received is None:
        received = signum
        _ignore_later_stops()
        raise Terminated(signum)


def _ignore_later_stops() -> None:
    """After the first stop signal, later ones are ignored by the operating system itself.

    Why not by this handler alone: when the interpreter finalizes, after `main` returned 143, it
    puts SIG_DFL back for every signal with a Python handler, and a second SIGTERM arriving then
    (`timeout` and impatient users send several) killed the process by the signal: return code
    -15 instead of exit 143, after the work was kept. An ignored signal stays ignored through
    finalization. SIGKILL still ends the process.
    """
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def install() -> None:
    """Make SIGTERM and SIGHUP raise `Terminated` in the main thread (the command line's call)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in STOP_SIGNALS:
        if hasattr(signal, name):  # SIGHUP does not exist on Windows
            signal.signal(getattr(signal, name), _handler)


def exit_code(default: int = 130) -> int:
    """128 + the stop signal received (143 for SIGTERM, 129 for SIGHUP), else `default` (Ctrl-C: 130)."""
    return 128 + received if received is not None else default


def name() -> str:
    """'SIGTERM' or 'SIGHUP' when one was received, else 'Ctrl-C'."""
    return signal.Signals(received).name if received is not None else "Ctrl-C"
