"""Tables of the bench reports, written once: how a value reads in a cell, Markdown, CSV.

Every Markdown, CSV and HTML table of a report formats its cells with `cell_text`, so a number
reads the same wherever it appears: floats to 4 significant digits (or a fixed format the caller
names), '-' for a missing or NaN value.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


def cell_text(value, number: str = ".4g", missing: str = "-", nan: str | None = None, yes_no: bool = False) -> str:
    """One table cell: a float in the format `number`, `missing` for None (and for NaN unless
    `nan` names its own text), booleans as yes/no when `yes_no`, anything else as `str`."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return ("yes" if value else "no") if yes_no else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return missing if nan is None else nan
        return f"{value:{number}}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str], number: str = ".4g", nan: str | None = None) -> str:
    """A Markdown table of `columns` (a row's missing key shows '-')."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(
        lines + ["| " + " | ".join(cell_text(r.get(c), number, nan=nan) for c in columns) + " |" for r in rows]
    )


def write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    """`rows` as CSV with the header `columns` (other keys left out; values as Python writes them)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_table(rows: list[dict], columns: list[str], stem: Path, title: str) -> None:
    """`stem`.csv and `stem`.md (under a `# title`) of the same rows."""
    write_csv(rows, columns, stem.with_suffix(".csv"))
    stem.with_suffix(".md").write_text(f"# {title}\n\n" + markdown_table(rows, columns) + "\n")
