"""README's Layout section names every module of the package, so a newcomer finds each one there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_every_module_is_named_in_the_layout_section():
    layout = layout_section()
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?=\.py\b)", layout))  # file names as written: run.py
    named |= set(re.findall(r"\b(?:evolution|first_order|torch_optim|lbfgs|guided_es|hybrid)\b", layout))
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "fvopt").rglob("*.py"))
        if p.name != "__init__.py" and p.stem not in named
    ]
    assert not missing, f"README's Layout section does not name: {', '.join(missing)}"


def test_every_package_folder_is_named_in_the_layout_section():
    layout = layout_section()
    folders = sorted({p.parent.name for p in (ROOT / "fvopt").rglob("__init__.py")} - {"fvopt"})
    assert all(f"fvopt/{name}/" in layout for name in folders), folders


def test_readme_carries_no_suite_counts_or_timings():
    """Test counts and the suite's time change with every commit: they belong to generated pages, not README."""
    text = (ROOT / "README.md").read_text()
    stale = re.findall(r"\b\d[\d,]* tests\b|\b\d+ passed\b|at the last count|suite[^.\n]*\b\d+(?::\d\d)? minutes", text)
    assert not stale, stale
