"""One declared setting: what it is, what it accepts, its default, and every place it appears.

A setting is declared once, as a field of one of the frozen sections in `fvopt.config.run` (or, for the command
line's own spellings, in `fvopt.config.command_line`). The command line's flags, `visualize`'s signature (checked
against it by the tests), the bench spec's keys, the atlas's options and the trace's `config` are all read off it,
so a flag cannot exist in one place and be missing or spelled differently in another (pycma's `CMAOptions`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import FvoptError, suggest
from .checks import Check, allowed, saying_allowed

SAME = "<same as the name>"  # `cli`, `python`, `spec`, `trace`: spelled as the setting's name


@dataclass(frozen=True)
class Setting:
    """A row of the declared table. `commands` are the commands whose flag it is; `defaults` the commands where it
    defaults to something else (the atlas shows dataset examples, so its reference defaults to builtin), declared
    here so that the difference is visible and checked. `cli`, `python`, `spec`, `trace` name the setting in each
    place (None: it does not appear there)."""

    name: str
    type: str
    default: Any
    help: str
    check: Check | None
    section: str
    commands: tuple[str, ...] = ("viz",)
    cli: str | None = SAME
    python: str | None = SAME
    spec: str | None = None
    trace: str | None = SAME
    metavar: str | None = None
    flag: bool = False  # a switch (--bf16): present means True
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> str:
        return allowed(self.check) if self.check else ""

    def default_for(self, command: str) -> Any:
        return self.defaults.get(command, self.default)

    def checked(self, value: Any, label: str | None = None) -> Any:
        """`value` checked and typed (None stays None: the default)."""
        if value is None or self.check is None:
            return value
        return saying_allowed(self.check)(label or self.name, value)

    def row(self) -> dict[str, Any]:
        """The setting as data: what `fvopt options --format json` prints."""
        return {
            "name": self.name,
            "section": self.section,
            "type": self.type,
            "default": _json_default(self.default),
            "defaults": {k: _json_default(v) for k, v in self.defaults.items()},
            "allowed": self.allowed or None,
            "help": self.help,
            "commands": list(self.commands),
            "cli": self.cli,
            "python": self.python,
            "spec": self.spec,
            "trace": self.trace,
        }


def _json_default(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return str(value)


def setting(
    default: Any,
    help: str,
    check: Check | None = None,
    *,
    commands: tuple[str, ...] = ("viz",),
    cli: str | None = SAME,
    python: str | None = SAME,
    spec: str | None = None,
    trace: str | None = SAME,
    metavar: str | None = None,
    flag: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> Any:
    """A dataclass field that carries its declaration (read back by `settings_of`)."""
    declared = dict(
        help=help,
        check=check,
        commands=commands,
        cli=cli,
        python=python,
        spec=spec,
        trace=trace,
        metavar=metavar,
        flag=flag,
        defaults=dict(defaults or {}),
    )
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"declared": declared})
    return field(default=default, metadata={"declared": declared})


class Section:
    """A frozen group of settings. Building one checks every value once; everything after trusts it."""

    def __post_init__(self) -> None:
        for item in settings_of(type(self)):
            value = getattr(self, item.name)
            object.__setattr__(self, item.name, item.checked(value, item.name))

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def settings_of(section: type) -> list[Setting]:
    """The declared rows of one section class, in declaration order."""
    rows = []
    for f in dataclasses.fields(section):
        declared = dict(f.metadata["declared"])
        name = f.name
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        for place in ("cli", "python", "trace"):
            if declared[place] == SAME:
                declared[place] = ("--" + name.replace("_", "-")) if place == "cli" else name
        if declared["trace"] is not None:
            declared["trace"] = f"config.{declared['trace']}"
        rows.append(
            Setting(
                name=name,
                type=str(f.type).replace("'", ""),
                default=default,
                section=getattr(section, "title", section.__name__),
                **declared,
            )
        )
    return rows


def refuse_unknown(names, known, where: str) -> None:
    """A key that no setting declares, refused in one line with the closest known name."""
    for name in names:
        if name not in known:
            raise FvoptError(
                f"{where}{name!r} is not a setting.{suggest(name, list(known))} See `fvopt options` for every setting."
            )
