"""What installed plugins add to fvopt: the table `fvopt plugins` prints.

Plugins are packages that declare entry points in the groups of fvopt.registry.GROUPS; this
module loads all of them (the registries load them lazily, one group at a time, otherwise) and
says, for each entry point, which names it registered or why it failed to load.
"""

from __future__ import annotations

from typing import Any

from .registry import GROUPS, BUILTIN, Plugin, Registry, load_plugins


def registries() -> dict[str, Registry[Any]]:
    """The registries by entry-point group (imports the modules that fill them with built-ins)."""
    from .bench.sections import SECTIONS
    from .gradients import GRADIENT_METHODS
    from .models.sources import MODEL_SOURCES
    from .objectives import TARGETS
    from .params.registry import PARAMS
    from .quality.registry import MEASURES
    from .strategies.base import REGISTRY
    from .transforms.grammar import TRANSFORM_PARTS

    import fvopt.models.loading  # noqa: F401  (registers the built-in model sources)
    import fvopt.params  # noqa: F401
    import fvopt.strategies  # noqa: F401

    return {
        "fvopt.strategies": REGISTRY,
        "fvopt.params": PARAMS,
        "fvopt.targets": TARGETS,
        "fvopt.transforms": TRANSFORM_PARTS,
        "fvopt.models": MODEL_SOURCES,
        "fvopt.gradients": GRADIENT_METHODS,
        "fvopt.measures": MEASURES,
        "fvopt.report_sections": SECTIONS,
    }


def plugin_rows() -> tuple[list[Plugin], dict[str, list[str]]]:
    """Every plugin entry point (loaded now), and per package the names it added ('optimizer adam')."""
    found = registries()
    plugins = [p for group in GROUPS for p in load_plugins(group)]
    added: dict[str, list[str]] = {}
    for registry in found.values():
        for name in registry:
            entry = registry[name]
            if entry.source != BUILTIN:
                added.setdefault(entry.source, []).append(f"{registry.kind} {name}")
        for prefix, family in registry.families.items():
            if family.source != BUILTIN:
                added.setdefault(family.source, []).append(f"{registry.kind} family {family.extra['pattern']}")
    return plugins, added


def describe_plugins() -> list[str]:
    """The lines of `fvopt plugins`: one per package with what it adds, one per broken entry point."""
    plugins, added = plugin_rows()
    if not plugins:
        return [
            f"no plugins installed (a package adds to fvopt through entry points in the groups "
            f"{', '.join(GROUPS)}; see README, Adding an optimizer)"
        ]
    lines = []
    for package in dict.fromkeys(p.package for p in plugins):
        mine = [p for p in plugins if p.package == package]
        names = added.get(package, [])
        lines.append(f"{package} {mine[0].version}: " + ("; ".join(names) if names else "adds nothing"))
        for p in mine:
            if p.error:
                lines.append(f"  failed: {p.group} entry point '{p.name} = {p.value}': {p.error}")
    return lines
