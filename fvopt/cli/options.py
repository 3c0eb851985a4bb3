"""`fvopt options [--format table|json]`: the declared settings, as the documentation's references read them."""

from __future__ import annotations

import argparse
import json

FORMATS = ("table", "json")


def add_parser(sub, shared) -> None:
    p = sub.add_parser(
        "options",
        parents=[shared.debug],
        help="every setting of a run: type, default, help, the commands that take it, its flag, Python parameter, "
        "spec key and trace key",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="table (for people) or json (for tools)")


def run(args: argparse.Namespace) -> int:
    from ..config import table

    rows = [row.row() for row in table()]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    columns = ("name", "default", "commands", "cli", "python", "spec", "trace")
    shown = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in shown)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    section = None
    for row, cells in zip(rows, shown):
        if row["section"] != section:
            section = row["section"]
            print(f"[{section}]")
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths)).rstrip())
        help = row["help"] if row["help"].endswith((".", ")")) else row["help"] + "."
        print(f"    {help}" + (f" Allowed: {row['allowed']}." if row["allowed"] else ""))
    print(f"{len(rows)} settings; fvopt options --format json gives them as data")
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
