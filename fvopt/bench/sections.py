"""The sections of a bench report by name: what each collects, its Markdown files and its HTML.

`write_report` (report.py) loops over this registry: each section collects what it needs from the
store's rows (and writes its data files and figures into the report folder), then gives its
Markdown (file name -> text) and its HTML body; the HTML page shows the sections in registration
order, each under its heading, linked from the navigation bar. A package adds one through an
entry point, as it adds an optimizer:

    [project.entry-points."fvopt.report_sections"]
    budget-spent = "my_package.report"     # a module whose import calls register_section

The conformance check `fvopt.testing.check_report_section` renders a section from a small real
store and checks its Markdown and HTML.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FvoptError
from ..registry import BUILTIN, Registry
from .comparison import (
    FIXED_BUDGET_COLUMNS,
    FIXED_TARGET_COLUMNS,
    PAIR_COLUMNS,
    Comparison,
    compare,
    comparison_markdown,
    win_rate_rows,
    write_comparison_files,
)
from .html_report import factor_section, failed_cells, figure, quality_section, setup_facts, table
from .metrics import CELL_COLUMNS, SUMMARY_COLUMNS, cell_metrics, summarize
from .plots import plot_convergence, plot_image_grid
from .rows import cell_name, problem_title, problems, slug
from .stats import TEST_NOTE
from .tables import markdown_table, write_csv


@dataclass
class ReportData:
    """What the sections of one report read: the finished and failed rows of the store, the report
    folder and options, and what each section collected (`collected`, computed once per report)."""

    rows: list[dict]
    failed: list[dict]
    out: Path
    targets: str = "fractions"
    examples: bool = True
    written: list[Path] = field(default_factory=list)  # every file a section wrote
    _collected: dict[str, Any] = field(default_factory=dict)

    def collected(self, name: str) -> Any:
        """What section `name` collected (collected now if it was not yet): a section may read another's."""
        if name not in self._collected:
            self._collected[name] = SECTIONS[name].obj.collect(self)
        return self._collected[name]


@dataclass(frozen=True)
class Section:
    """A report section: `collect(data)` -> what it shows (None: the section is left out of this report);
    `markdown(collected, data)` -> {file name: Markdown text} written into the report folder;
    `html(collected, data)` -> the HTML body of its part of report.html; `title` its heading (text, or
    a function of what it collected). A section without HTML writes files only; one without Markdown
    is shown in the HTML only."""

    title: "str | Callable[[Any, ReportData], str]"
    collect: Callable[[ReportData], Any]
    markdown: "Callable[[Any, ReportData], dict[str, str]] | None" = None
    html: "Callable[[Any, ReportData], str] | None" = None

    def heading(self, collected: Any, data: ReportData) -> str:
        return self.title(collected, data) if callable(self.title) else self.title


SECTIONS: Registry[Section] = Registry("report section", "fvopt.report_sections", "fvopt.bench.sections")


def register_section(
    name: str,
    title: "str | Callable[[Any, ReportData], str]",
    help: str,
    collect: Callable[[ReportData], Any],
    markdown: "Callable[[Any, ReportData], dict[str, str]] | None" = None,
    html: "Callable[[Any, ReportData], str] | None" = None,
) -> Section:
    """Register the report section `name` (also its anchor in report.html): a word of letters,
    digits, '-' and '_'. Its Markdown files must be plain `.md` names (never a path: a report writes
    only into its own folder)."""
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise FvoptError(f"report section name {name!r} must be a word of letters, digits, '-' and '_'")
    if markdown is None and html is None:
        raise FvoptError(f"report section '{name}' has neither Markdown nor HTML: it would show nothing")
    section = Section(title, collect, markdown, html)
    SECTIONS.add(name, section, help)
    return section


def render_markdown(name: str, collected: Any, data: ReportData) -> dict[str, str]:
    """Section `name`'s Markdown files, refused when a name is not a plain .md file of the report folder."""
    section = SECTIONS[name].obj
    files = section.markdown(collected, data) if section.markdown is not None and collected is not None else {}
    for file in files:
        if not isinstance(file, str) or Path(file).name != file or not file.endswith(".md") or file.startswith("."):
            raise FvoptError(f"report section '{name}' names the Markdown file {file!r}: a plain NAME.md is allowed")
    return files


def render_section(name: str, data: ReportData) -> "tuple[str, str, str] | None":
    """Section `name` into the report: its Markdown files written, its (anchor, heading, HTML) returned
    (None when it shows nothing here). A plugin's section that fails is left out of the report, which is
    written without it and says why (on stderr and in its place on the page); fvopt's own fail loudly."""
    entry = SECTIONS[name]
    try:
        collected = data.collected(name)
        for file, text in render_markdown(name, collected, data).items():
            (data.out / file).write_text(text)
            data.written.append(data.out / file)
        if collected is None or entry.obj.html is None:
            return None
        return name, entry.obj.heading(collected, data), entry.obj.html(collected, data)
    except Exception as err:  # noqa: BLE001 - a plugin's failure is reported, not raised
        if entry.source == BUILTIN or isinstance(err, (FvoptError, OSError)):
            raise
        first = (str(err).strip().splitlines() or [""])[0][:300]
        said = f"{type(err).__name__}: {first}" if first else type(err).__name__
        print(
            f"fvopt: report section '{name}' of plugin package '{entry.source}' failed and is left out: {said}",
            file=sys.stderr,
        )
        text = f"This section (plugin package {entry.source}) failed and is left out: {said}"
        return name, name, f"<p class=muted>{html.escape(text)}</p>"


# ---------------------------------------------------------------------------------------------
# fvopt's sections, in the order of the page


def _comparisons(data: ReportData) -> tuple[Comparison, tuple[Comparison, ...]]:
    rows, failed = data.rows, data.failed
    comparison = compare(rows, failed, data.targets)
    by_factor = tuple(
        compare(rows, failed, data.targets, factor=f)
        for f in ("strategy", "param")
        if len({r["param"] for r in rows}) > 1
    )
    data.written += write_comparison_files(comparison, data.out, by_factor)
    return comparison, by_factor


register_section(
    "comparison",
    "Comparison",
    "comparison.md: the paired statistics, fixed-budget and fixed-target tables (and their CSV files and figures)",
    _comparisons,
    markdown=lambda c, data: {"comparison.md": comparison_markdown(*c)},
)


def _comparison(data: ReportData) -> Comparison:
    """The comparison of the whole report (without the ones by strategy and by parameterization)."""
    return data.collected("comparison")[0]


def _figures(c: Comparison, keys: tuple[tuple[str, str], ...]) -> str:
    return "".join(figure(c.figures[k], cap) for k, cap in keys if k in c.figures)


register_section(
    "conclusions",
    "Conclusions",
    "the comparison's conclusions in plain sentences",
    _comparison,
    html=lambda c, data: (
        '<ul class="conclusions">' + "".join(f"<li>{html.escape(s)}</li>" for s in c.conclusions()) + "</ul>"
    ),
)
register_section(
    "setup",
    "Setup and versions",
    "the design as the cells record it, the versions and devices they ran with, the machine writing the report",
    lambda data: setup_facts(data.rows, data.failed),
    html=lambda facts, data: (
        "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()) + "</dl>"
    ),
)


def _budget_html(c: Comparison, data: ReportData) -> str:
    return (
        _figures(
            c,
            (("fixed_budget", "Normalized best-so-far against model passes and seconds (median, interquartile band)"),),
        )
        + "<p class=muted>Area under the normalized best-so-far curve (one anytime number; "
        "each problem's horizon is its longest run), runs that stopped early and cells that failed:</p>"
        + table(c.fixed_budget, FIXED_BUDGET_COLUMNS)
    )


register_section(
    "budget",
    "Fixed budget",
    "the anytime view: normalized best-so-far curves and their areas",
    _comparison,
    html=_budget_html,
)


def _target_html(c: Comparison, data: ReportData) -> str:
    return (
        _figures(c, (("ecdf", "Empirical distribution of run times over all (run, target) pairs"),))
        + "<p class=muted>aRT (COCO): every pass of every run until the target, an unsuccessful run in full, "
        "divided by the number of successful runs; inf when no run reached it. "
        "p10/p50/p90: bootstrap over runs.</p>" + table(c.fixed_target, FIXED_TARGET_COLUMNS)
    )


register_section(
    "target",
    "Fixed target",
    "the fixed-target view: ECDF of run times and aRT",
    _comparison,
    html=_target_html,
)


def _stats_html(collected: tuple[Comparison, tuple[Comparison, ...]], data: ReportData) -> str:
    c, also = collected
    return (
        f"<p>{html.escape(TEST_NOTE)}</p>"
        + _figures(
            c,
            (
                (
                    "critical_difference",
                    "Critical-difference diagram (scikit-posthocs): mean ranks, bars join strategies "
                    "not significantly different after Holm's correction",
                ),
                (
                    "win_rate",
                    "Win-rate matrix: share of paired blocks where the row beats the column, 95% bootstrap interval",
                ),
            ),
        )
        + "<h3>Pairwise Wilcoxon signed-rank tests (green: significant after Holm's correction)</h3>"
        + table(c.pairs.to_dict("records"), PAIR_COLUMNS, highlight="significant")
        + (
            "<h3>Win rates</h3>" + table(win_rate_rows(c.wins), ["strategy", *c.wins["rate"].columns])
            if c.wins is not None
            else ""
        )
        + "".join(factor_section(o, data.out / f"critical_difference_{o.paired.factor}.png") for o in also)
    )


register_section(
    "stats",
    "Paired statistics",
    "Friedman, pairwise Wilcoxon with Holm's correction, critical-difference diagram, win rates",
    lambda data: data.collected("comparison"),
    html=_stats_html,
)


def _curves(data: ReportData) -> list[tuple[Path, str]]:
    curves = []
    for axis in ("time", "passes"):
        path = data.out / f"convergence_{axis}.png"
        plot_convergence(data.rows, axis, path)
        data.written.append(path)
        what = "wall time" if axis == "time" else "model passes"
        curves.append((path, f"Best objective against {what} per problem"))
    return curves


register_section(
    "curves",
    "Convergence per problem",
    "best objective against wall time and against model passes, per problem",
    _curves,
    html=lambda curves, data: "".join(figure(p, cap) for p, cap in curves),
)


def _tables(data: ReportData) -> tuple[list[dict], list[dict]]:
    cells = cell_metrics(data.rows)
    summary = summarize(cells)
    for name, rows, columns in (("cells", cells, CELL_COLUMNS), ("summary", summary, SUMMARY_COLUMNS)):
        write_csv(rows, columns, data.out / f"{name}.csv")
        data.written.append(data.out / f"{name}.csv")
    return cells, summary


def _tables_markdown(collected: tuple[list[dict], list[dict]], data: ReportData) -> dict[str, str]:
    cells, summary = collected
    return {
        "cells.md": f"# All cells ({len(cells)})\n\n" + markdown_table(cells, CELL_COLUMNS) + "\n",
        "summary.md": "# Medians over seeds\n\n" + markdown_table(summary, SUMMARY_COLUMNS) + "\n",
    }


register_section(
    "summary",
    "Medians over seeds",
    "every cell's metrics (cells.md, .csv) and their medians over seeds (summary.md, .csv)",
    _tables,
    markdown=_tables_markdown,
    html=lambda collected, data: table(collected[1], SUMMARY_COLUMNS),
)


def _grids(data: ReportData) -> list[tuple[Path, str]]:
    rows = data.rows
    several = len({r.get("model") for r in rows}) > 1
    grids = []
    for model, target in problems(rows):
        # JPEG: these grids of noisy, photo-like images are ten times smaller than as PNG
        path = data.out / f"images_{slug(str(model)) + '_' if several else ''}{slug(target)}.jpg"
        plot_image_grid(rows, target, path, model)
        data.written.append(path)
        grids.append((path, problem_title(model, target, rows)))
    return grids


register_section(
    "images",
    "Final images",
    "the final images of each problem: strategies down, parameterizations (or seeds) across",
    _grids,
    html=lambda grids, data: "".join(figure(p, cap) for p, cap in grids),
)


def _quality(data: ReportData):
    from .quality_report import collect_quality

    section, files = collect_quality(data.rows, data.out, examples=data.examples)  # None when no cell was judged
    data.written += files
    return section


def _quality_markdown(section, data: ReportData) -> dict[str, str]:
    from .quality_report import quality_markdown

    return {"quality.md": quality_markdown(data.rows, section.comparisons, level="#") + "\n"}


register_section(
    "quality",
    "Quality measures",
    "the quality measures (fvopt.quality) of the judged cells: verdicts, means, scatters, dataset examples",
    _quality,
    markdown=_quality_markdown,
    html=lambda section, data: quality_section(section, data.collected("images")),
)


def failed_markdown(failed: list[dict]) -> str:
    """failed.md: how many cells failed, each with its error, and its traceback (databases since
    schema version 1 keep it) folded under it."""
    if not failed:
        return "# Failed cells\n\nNone: every cell of the database finished.\n"
    lines = [f"{len(failed)} {'cell' if len(failed) == 1 else 'cells'} failed (not in any table or figure):", ""]
    for r in failed:
        lines.append(f"- {cell_name(r)}: {r['error']}")
        if r.get("traceback"):
            body = "\n".join("  " + line for line in r["traceback"].rstrip().splitlines())
            lines += ["", "  <details><summary>traceback</summary>", "", "  ```", body, "  ```", "", "  </details>", ""]
    return "# Failed cells\n\n" + "\n".join(lines).rstrip() + "\n"


register_section(
    "failed",
    lambda failed, data: f"Failed cells ({len(failed)})" if failed else "Failed cells",
    "the cells that failed, with their errors and tracebacks (always written, so no list outlives its failures)",
    lambda data: data.failed,
    markdown=lambda failed, data: {"failed.md": failed_markdown(failed)},
    html=lambda failed, data: failed_cells(failed),
)
