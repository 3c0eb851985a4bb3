from fvopt.bench.html_report import table
from fvopt.bench.sections import register_section
from fvopt.bench.tables import markdown_table

COLUMNS = ["strategy", "cells", "passes"]


def _spent(data) -> list[dict]:
    names = sorted({r["strategy"] for r in data.rows})
    mine = {n: [r for r in data.rows if r["strategy"] == n] for n in names}
    passes = {n: sum(r["forwards"] + r["backwards"] for r in rows) for n, rows in mine.items()}
    return [{"strategy": n, "cells": len(mine[n]), "passes": passes[n]} for n in names]


register_section(
    "budget-spent",
    "Budget spent",
    "the model passes each strategy spent, over all its cells",
    _spent,
    markdown=lambda rows, data: {"budget_spent.md": "# Budget spent\n\n" + markdown_table(rows, COLUMNS) + "\n"},
    html=lambda rows, data: table(rows, COLUMNS),
)
