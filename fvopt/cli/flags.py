"""Flags read off the declared settings (fvopt.config): one definition per flag, its type check, default and help
from the setting, so a command cannot spell, type or default a shared option differently from another."""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from ..config import table
from ..config.settings import Setting
from ..errors import FvoptError


def typed(row: Setting):
    """An argparse type from a setting's check: the same refusal as the Python API and the spec."""

    def parse(text: str) -> Any:
        try:
            return row.checked(text, row.name)
        except FvoptError as err:  # "argument --seed: '-1' is not allowed: ...": the flag already names it
            message = str(err)
            message = message[len(row.name) + 1 :] if message.startswith(f"{row.name}=") else message
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = row.name  # argparse names the type in "invalid NAME value"
    return parse


def _help(row: Setting, command: str) -> str:
    default = row.default_for(command)
    shown = "" if default is None or default is False or "default" in row.help else f" (default: {default})"
    return row.help + shown


def add_flag(parser, row: Setting, command: str | None = None, suppress: bool = False) -> None:
    """One setting's flag: its check as the type, its default (the command's own, where declared) and help."""
    default = argparse.SUPPRESS if suppress else row.default_for(command) if command else row.default
    help = _help(row, command or "")
    if row.name == "measures":  # the registered measures, plugins' included, listed where they are chosen
        from ..quality.registry import measures_help

        help = measures_help()
    if row.flag:
        parser.add_argument(row.cli, dest=row.name, action="store_true", default=default, help=help)
    elif row.name == "option":
        parser.add_argument(
            row.cli, dest=row.name, type=_key_value, action="append", default=default, metavar=row.metavar, help=help
        )
    else:
        parser.add_argument(row.cli, dest=row.name, type=typed(row), default=default, metavar=row.metavar, help=help)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    command: str,
    *,
    only: Iterable[str] | None = None,
    suppress: bool = False,
) -> list[Setting]:
    """Add the flag of every declared setting that `command` takes (or of those in `only`), grouped by section.
    `suppress`: a flag not given is absent from the namespace (so a configuration file's value stands)."""
    wanted = set(only) if only is not None else None
    added, groups = [], {}
    for row in table():
        if command not in row.commands or row.cli is None or (wanted is not None and row.name not in wanted):
            continue
        group = groups.get(row.section) or groups.setdefault(row.section, parser.add_argument_group(row.section))
        add_flag(group, row, command, suppress)
        added.append(row)
    return added


def _key_value(text: str) -> tuple[str, str]:
    """KEY=VALUE, kept as text: the strategy's declared option types convert and check it."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' must be KEY=VALUE")
    return key.strip().replace("-", "_"), value
