"""One registry type for every extension point, and plugins through Python entry points.

fvopt is extended in eight places: optimizers (strategies), parameterizations, target kinds,
transform parts, image-gradient methods, model sources, quality measures and report sections.
Each is a `Registry` of entries with a name, a one-line help, typed options
(`fvopt.config.options.Option`) and examples, plus families of names resolved by a prefix (`ng:`,
`torch:`, `hybrid:`, `torchvision:`, `timm:`). The command line, spec validation, error messages
(with the closest names) and the conformance checks (`fvopt.testing`)
read the registries, so a new entry is one registration in one file.

Why entry points: a user's package adds an optimizer without editing fvopt. It declares, in its
own pyproject.toml,

    [project.entry-points."fvopt.strategies"]
    one-plus-lambda = "my_package.strategy"      # a module whose import registers its entries

and the registry imports that module the first time it is asked for a name it does not know, or
for its whole listing (never at `import fvopt`: a broken plugin cannot break unrelated commands).
A plugin that fails to import is reported once, in one line naming its package, and skipped.
"""

from __future__ import annotations

import contextvars
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import FvoptError, suggest
from .config.options import Option

T = TypeVar("T")

BUILTIN = "fvopt"
# The entry-point group each registry reads.
GROUPS = (
    "fvopt.strategies",
    "fvopt.params",
    "fvopt.targets",
    "fvopt.transforms",
    "fvopt.models",
    "fvopt.gradients",
    "fvopt.measures",
    "fvopt.report_sections",
)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: what builds it (`obj`), its help, typed options, examples, and who added it.

    `extra` holds facts one kind needs and others do not (a target kind's usage and field counts,
    a family's pattern).
    """

    name: str
    obj: T
    help: str
    options: Mapping[str, Option] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    source: str = BUILTIN
    extra: Mapping[str, Any] = field(default_factory=dict)


# The package whose plugin module is being imported: entries registered meanwhile are credited to it.
_SOURCE: contextvars.ContextVar[str] = contextvars.ContextVar("fvopt_plugin_source", default=BUILTIN)


class Registry(MutableMapping[str, Entry[T]], Generic[T]):
    """Names of one kind (`kind`, e.g. "optimizer") -> entries, plus prefix families.

    It is a mapping (`name in REGISTRY`, `REGISTRY[name]`, iteration): a table of names reads as
    one. Iteration and a missing name load the plugins of `group`
    first (once per process); `home` is the fvopt module whose import registers the built-ins, so
    they come first and a plugin may import it.
    """

    def __init__(self, kind: str, group: str | None = None, home: str | None = None) -> None:
        self.kind, self.group, self.home = kind, group, home
        self._entries: dict[str, Entry[T]] = {}
        self.families: dict[str, Entry[Any]] = {}

    # -- adding ------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        obj: T,
        help: str,
        options: Mapping[str, Option] | None = None,
        examples: tuple[str, ...] | list[str] = (),
        **extra: Any,
    ) -> Entry[T]:
        """Register `obj` under `name`; a name another package already holds is refused.

        Why refuse: a plugin that silently replaced fvopt's `adam` would change what runs under a
        name every study and trace already uses. The same package registering again replaces its
        own entry (a module imported twice, an example run twice).
        """
        if not isinstance(name, str) or not name.strip() or any(c in name for c in ", \n"):
            raise FvoptError(f"{self.kind} name {name!r} must be a non-empty word without spaces or commas")
        source = _SOURCE.get()
        held = self._entries.get(name)
        if held is not None and held.source != source:
            raise FvoptError(
                f"{self.kind} '{name}' is already registered by {held.source}; {source} cannot "
                "register it again: choose another name"
            )
        bad = [key for key, option in (options or {}).items() if not isinstance(option, Option)]
        if bad:
            raise FvoptError(f"option '{bad[0]}' of {self.kind} '{name}' must be an fvopt.config.options.Option")
        entry = Entry(name, obj, help, dict(options or {}), tuple(examples) or (name,), source, dict(extra))
        self._entries[name] = entry
        return entry

    def register(
        self,
        name: str,
        help: str,
        options: Mapping[str, Option] | None = None,
        examples: tuple[str, ...] | list[str] = (),
        **extra: Any,
    ) -> Callable[[Any], Any]:
        """Decorator form of `add`: `@REGISTRY.register("name", "help", {...})` over a class or function."""

        def deco(obj: Any) -> Any:
            self.add(name, obj, help, options, examples, **extra)
            return obj

        return deco

    def add_family(self, prefix: str, obj: Any, help: str, example: str, pattern: str | None = None) -> Entry[Any]:
        """Every name `prefix...` resolves through `obj` (a family holds more names than a table lists)."""
        source = _SOURCE.get()
        held = self.families.get(prefix)
        if held is not None and held.source != source:
            raise FvoptError(f"{self.kind} family '{prefix}' is already registered by {held.source}")
        entry = Entry(prefix, obj, help, {}, (example,), source, {"pattern": pattern or f"{prefix}<Name>"})
        self.families[prefix] = entry
        return entry

    # -- looking up --------------------------------------------------------------------------
    def family_of(self, name: str) -> Entry[Any] | None:
        """The family a name belongs to by its prefix (plugins loaded if no family matches)."""
        found = self._family_of(name)
        if found is None and self._load():
            found = self._family_of(name)
        return found

    def _family_of(self, name: str) -> Entry[Any] | None:
        return next((f for prefix, f in self.families.items() if name.startswith(prefix)), None)

    def knows(self, name: str) -> bool:
        """A registered name or a name of a family (the family checks the rest when it builds)."""
        return name in self or self.family_of(name) is not None

    def get_entry(self, name: str, hint: str | None = None) -> Entry[T]:
        """The entry of `name`, or an FvoptError naming it, the closest names and what is known."""
        if name in self:
            return self._entries[name]
        raise self.unknown(name, hint)

    def unknown(
        self, name: str, hint: str | None = None, candidates: list[str] | tuple[str, ...] = (), known: str | None = None
    ) -> FvoptError:
        """The one-line error for an unknown name: closest names, the known ones, broken plugins."""
        hint = suggest(name, [*self._entries, *candidates]) if hint is None else hint
        if known is None:
            known = ", ".join(self._entries)
            if self.families:
                known += "; families: " + "; ".join(
                    f"{f.extra['pattern']} (e.g. {f.examples[0]})" for f in self.families.values()
                )
        broken = [e for e in plugin_errors() if e.group == self.group]
        tail = "".join(f" (plugin package '{e.package}' failed to load: {e.message})" for e in broken)
        return FvoptError(f"unknown {self.kind} '{name}'.{hint} Known: {known}{tail}")

    def names(self, plugins: bool = True) -> list[str]:
        """Registered names in registration order; `plugins=False` does not load plugins."""
        if plugins:
            self._load()
        return list(self._entries)

    # -- the mapping protocol ---------------------------------------------------------------
    def __getitem__(self, name: str) -> Entry[T]:
        if name not in self._entries:
            self._load()
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        return isinstance(name, str) and self._load() and name in self._entries

    def __setitem__(self, name: str, entry: Entry[T]) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)}, families={list(self.families)})"

    def _load(self) -> bool:
        """Load this registry's plugins if not done yet; True when that may have added names."""
        if self.group is None or self.group in _LOADED or self.group in _LOADING:
            return False
        if self.home:
            importlib.import_module(self.home)  # the built-ins first: plugins may import them
        load_plugins(self.group)
        return True


# ---------------------------------------------------------------------------------------------
# Plugins


@dataclass(frozen=True)
class Plugin:
    """One entry point of an installed package, and what loading it gave."""

    package: str
    version: str
    group: str
    name: str
    value: str
    error: str | None = None

    @property
    def message(self) -> str:
        return self.error or ""


_LOADED: set[str] = set()
_LOADING: set[str] = set()
_PLUGINS: list[Plugin] = []


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: (ep.value, ep.name))


def load_plugins(group: str) -> list[Plugin]:
    """Import every entry point of `group` once per process; a failure is one line on stderr.

    Why not raise: the plugin belongs to another package, and `fvopt viz --optimizer adam` must
    not fail because an unrelated plugin is broken. Its names are then simply unknown, and the
    unknown-name error says which plugin failed.
    """
    if group in _LOADED or group in _LOADING:
        return [p for p in _PLUGINS if p.group == group]
    _LOADING.add(group)
    try:
        for ep in _entry_points(group):
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else ep.value.split(".")[0].split(":")[0]
            version = dist.version if dist is not None else "?"
            token = _SOURCE.set(package)
            error = None
            try:
                ep.load()
            except Exception as err:  # noqa: BLE001 - any failure of foreign code is reported, not raised
                first = (str(err).strip().splitlines() or [""])[0][:300]
                error = f"{type(err).__name__}: {first}" if first else type(err).__name__
                print(
                    f"fvopt: plugin package '{package}' ({group} entry point '{ep.name} = {ep.value}') failed "
                    f"to load and is skipped: {error}",
                    file=sys.stderr,
                )
            finally:
                _SOURCE.reset(token)
            _PLUGINS.append(Plugin(package, version, group, ep.name, ep.value, error))
    finally:
        _LOADING.discard(group)
        _LOADED.add(group)
    return [p for p in _PLUGINS if p.group == group]


def plugin_errors() -> list[Plugin]:
    """Plugins that failed to load so far in this process."""
    return [p for p in _PLUGINS if p.error]


def forget_plugins() -> None:
    """Forget which groups were loaded, so the next lookup reads the entry points again.

    For tests and for a session that installed a plugin after fvopt was imported; entries already
    registered stay.
    """
    _LOADED.clear()
    _PLUGINS.clear()
