"""One self-contained HTML file for a benchmark report: conclusions, setup, versions, every figure
and table, the image grids and the failures, with images embedded, so it opens offline and can
be mailed or attached as it is."""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

from .comparison import (
    FACTOR_TITLES,
    PAIR_COLUMNS,
    Comparison,
)
from .quality_report import QualitySection, means_by, means_columns, shown
from .rows import cell_name
from .tables import cell_text

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
main{max-width:1180px;margin:auto;padding:24px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}.muted{color:#57606a}
nav{position:sticky;top:0;background:#fafbfc;padding:8px 0;border-bottom:1px solid #d8dee4;z-index:2}
nav a{margin-right:14px;color:#0969da;text-decoration:none;font-size:13px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px;background:#fff;display:block;overflow-x:auto}
th,td{border:1px solid #d8dee4;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f3f6;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
tr.sig td{background:#eef7ee}figure{margin:10px 0 18px}
figure img{max-width:100%;border:1px solid #d8dee4;background:#fff}
figcaption{font-size:12.5px;color:#57606a}ul.conclusions li{margin:4px 0}
dl{display:grid;grid-template-columns:190px 1fr;gap:3px 12px}
dt{font-weight:600}dd{margin:0}code{background:#f0f3f6;padding:1px 4px;border-radius:3px}
"""

CHECK_IMAGES = """
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""


def _cell(value) -> str:
    """A table cell as every report table writes it (`tables.cell_text`), with a dash for missing."""
    return html.escape(cell_text(value, missing="–", yes_no=True))


def table(rows: list[dict], columns: list[str], highlight: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr{' class=sig' if highlight and r.get(highlight) else ''}>"
        + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(path: Path, caption: str) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:{mime};base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def setup_facts(rows: list[dict], failed: list[dict]) -> dict[str, str]:
    """The design as the cells record it (the database keeps each cell's settings, not the spec
    file), the versions and devices the cells ran with, and the machine writing the report."""
    every = rows + failed

    def values(key):
        return ", ".join(sorted({str(r.get(key)) for r in every}))

    strategies = sorted(
        {
            f"{r['strategy']}" + (f" {json.dumps(r['options'], sort_keys=True)}" if r.get("options") else "")
            for r in every
        }
    )
    budgets = sorted({json.dumps(r["budget"], sort_keys=True) for r in every})
    return {
        "spec": values("spec_name") + f" (hash {values('spec_hash')})",
        "models": values("model"),
        "targets": values("target"),
        "strategies": "; ".join(strategies),
        "parameterizations": values("param")
        + (f" (as used: {values('param_used')})" if values("param_used") != values("param") else ""),
        "seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in every})),
        "image size": values("size") + " px",
        "budget": "; ".join(budgets),
        "transforms": values("transforms"),
        "returned point (result)": returned_points(rows),
        "cells": f"{len(rows)} finished, {len(failed)} failed",
        "ran with": "; ".join(
            f"fvopt {f}, torch {t} on {d} ({n} cells)"
            for (f, t, d), n in sorted(
                Counter((r.get("fvopt_version"), r.get("torch_version"), r.get("device")) for r in every).items(),
                key=str,
            )
        ),
        "finished": (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(min(r["finished_at"] for r in rows if r.get("finished_at"))))
            + " to "
            + time.strftime(
                "%Y-%m-%d %H:%M UTC", time.gmtime(max(r["finished_at"] for r in rows if r.get("finished_at")))
            )
            if any(r.get("finished_at") for r in rows)
            else "–"
        ),
        "report written on": f"Python {platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPUs; "
        + ", ".join(
            f"{p} {_version(p)}"
            for p in ("fvopt", "numpy", "scipy", "pandas", "scikit-posthocs", "statsmodels", "matplotlib")
        ),
    }


def returned_points(rows: list[dict]) -> str:
    """Which point each strategy returned (`result`: last, best or recommend), as its
    cells record it; cells from before the option existed say "not recorded"."""
    seen: dict[str, set] = {}
    for r in rows:
        seen.setdefault(r["strategy"], set()).add(str((r.get("extra") or {}).get("result") or "not recorded"))
    return "; ".join(f"{name}: {', '.join(sorted(v))}" for name, v in sorted(seen.items())) or "–"


def factor_section(other: Comparison, figure_path: Path | None) -> str:
    """The same cells compared by one factor (optimizers alone, parameterizations alone)."""
    return (
        f"<h3>{html.escape(FACTOR_TITLES[other.paired.factor])}</h3><ul>"
        + "".join(f"<li>{html.escape(s)}</li>" for s in other.conclusions()[:3])
        + "</ul>"
        + (figure(figure_path, "Critical-difference diagram") if figure_path and figure_path.exists() else "")
        + table(other.pairs.to_dict("records"), PAIR_COLUMNS, highlight="significant")
    )


def failed_cells(failed: list[dict]) -> str:
    """Each failed cell with its error; its traceback, where the database kept one, folded under it."""
    if not failed:
        return "<p>None: every cell of the database finished.</p>"
    if not any(r.get("traceback") for r in failed):
        return table([{"cell": cell_name(r), "error": r.get("error")} for r in failed], ["cell", "error"])
    body = "".join(
        f"<tr><td>{html.escape(cell_name(r))}</td><td style='text-align:left'>"
        + (
            f"<details><summary>{_cell(r.get('error'))}</summary><pre>{html.escape(r['traceback'])}</pre></details>"
            if r.get("traceback")
            else _cell(r.get("error"))
        )
        + "</td></tr>"
        for r in failed
    )
    head = "<thead><tr><th>cell</th><th>error (click for the traceback)</th></tr></thead>"
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _measure_text(r: dict, m: str) -> str:
    """A measure of one cell as its table shows it: value [interval], and 'uninformative' where a
    control of its unit matched or beat it."""
    v = r.get(m)
    if v is None:
        return "–"
    lo, hi = r.get(f"{m}_lo"), r.get(f"{m}_hi")
    ci = f" [{lo:.3g}, {hi:.3g}]" if isinstance(lo, float) and isinstance(hi, float) and lo == lo and hi == hi else ""
    return f"{v:.3g}{ci}" + (" uninformative" if r.get(f"{m}_informative") is False else "")


def quality_section(q: QualitySection, grids: list[tuple[Path, str]]) -> str:
    """Each measure's verdict (the paired tests over the targets where it beats its controls), the
    means per optimizer, then per target: its final images beside the unit's dataset examples and
    the quality-against-activation figure, and every cell's measures (uninformative ones marked)."""
    present = [m for m in shown() if any(r.get(m) is not None for r in q.records)]
    parts = [
        f"<p>Reference set: <b>{html.escape(str(q.reference))}</b>. A measure is ranked only on the targets "
        "where it beats its controls (uniform gray, uniform noise, a random reference image of the same unit); "
        "where a control matches or beats it, it is marked uninformative and not ranked.</p>"
    ]
    for c in q.comparisons:
        parts.append(
            f"<h3>{html.escape(c.measure)}</h3><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in c.conclusions())
            + "</ul>"
        )
    parts.append(
        f"<h3>Means per optimizer (reference: {html.escape(str(q.reference))})</h3>"
        + table(means_by(q.records), means_columns())
    )
    parts += [f"<p class=muted>{html.escape(n)}</p>" for n in q.notes]
    grid_of = {cap: p for p, cap in grids}
    for problem, scatter in q.scatters.items():
        mine = [r for r in q.records if (r["model"], r["target"]) == problem]
        title = problem[1] if problem[1] in grid_of else f"{problem[0]}: {problem[1]}"
        row = []
        if title in grid_of:
            row.append(figure(grid_of[title], f"{title}: final images"))
        if problem in q.examples:
            row.append(
                figure(q.examples[problem], f"{problem[1]}: dataset examples (top, crops, bottom) from {q.reference}")
            )
        parts.append(
            f"<h3>{html.escape(title)}</h3><div style='display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start'>"
            + "".join(row)
            + "</div>"
            + figure(scatter, f"{title}: quality against activation")
            + table(
                [
                    {
                        "strategy": r["strategy"],
                        "seed": r["seed"],
                        "robust_value": r["robust_value"],
                        "robust_8bit": r["robust_8bit"],
                        **{m: _measure_text(r, m) for m in present},
                    }
                    for r in sorted(mine, key=lambda r: (r["strategy"], r["seed"]))
                ],
                ["strategy", "seed", "robust_value", "robust_8bit", *present],
            )
        )
    return "".join(parts)


def write_html(path: Path, title: str, sections: list[tuple[str, str, str]]) -> Path:
    """Write the report page to `path`: `sections` are (anchor, heading, HTML body) in page order
    (the report sections of fvopt.bench.sections render them), each linked from the navigation bar."""
    nav = "".join(f'<a href="#{key}">{html.escape(name)}</a>' for key, name, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{html.escape(name)}</h2>{content}</section>' for key, name, content in sections
    )
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class=muted>fvopt benchmark report, written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p><nav>{nav}</nav>{body}</main>"
        f"<script>{CHECK_IMAGES}</script></body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path
