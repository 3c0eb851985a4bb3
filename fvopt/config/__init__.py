"""The declared run configuration: every setting of a run with its type, default, check, help and the places it
appears (command line, Python, bench spec, trace). `fvopt options` prints the table; the command line's flags,
the spec reader and the trace are derived from it."""

from __future__ import annotations

import functools

from .settings import Setting


def table() -> list[Setting]:
    """Every declared setting: the run's (fvopt.config.run), then the command line's own (fvopt.config.command_line)."""
    from .command_line import COMMAND_LINE_SETTINGS
    from .run import RUN_SETTINGS

    return [*RUN_SETTINGS.values(), *COMMAND_LINE_SETTINGS.values()]


def setting(name: str) -> Setting:
    """The declared setting `name` (a KeyError names it: a typo here is a bug in fvopt, not a user's mistake)."""
    return _by_name()[name]


@functools.cache
def _by_name() -> dict[str, Setting]:
    return {row.name: row for row in table()}


def __getattr__(name: str):
    """`fvopt.config.RunConfig`, imported on first use (it loads torch and the objectives)."""
    if name in ("RunConfig", "read_config_file", "RUN_SETTINGS"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'fvopt.config' has no attribute {name!r}")


__all__ = ["RunConfig", "Setting", "read_config_file", "setting", "table"]
