"""The top of the bench reports: `write_report` writes every table, figure and export of a
results database into one folder (and, with `html`, one self-contained report.html).

The layers below it, each importing only those under it:
rows (what a stored cell means, the reference value) -> tables, export -> plots -> metrics,
anytime, stats, analysis -> comparison -> html_report -> report.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FvoptError
from ..scoped import keeps_process_state

# the names below were defined here before the bench package was layered: still importable from here
from .metrics import CELL_COLUMNS, SUMMARY_COLUMNS, cell_metrics, summarize  # noqa: F401
from .metrics import time_area as area_under  # noqa: F401
from .plots import plot_convergence, plot_image_grid
from .rows import best_at, cell_name, passes_of, problem_title, problems, slug  # noqa: F401
from .store import Store
from .tables import markdown_table, write_csv, write_table  # noqa: F401


@keeps_process_state  # generators, threads and backend switches restored on return (fvopt.scoped)
def write_report(
    db: str | Path,
    out: str | Path,
    targets: str = "fractions",
    html: bool = True,
    exports: bool = True,
    examples: bool = True,
) -> list[Path]:
    """Every figure and table for the finished cells of `db` into the folder `out` (files of an
    earlier report there are rewritten), the comparison (fixed-target and fixed-budget views,
    paired statistics; `targets`: "fractions" of each problem's best, or COCO-style "budget"-based
    ones), with `html` all of it in one self-contained report.html, and with `exports` every trace
    point as traces.csv and in IOHprofiler's format; returns the files written. Cells judged by
    fvopt.quality (a spec's reference, or `fvopt bench rescore`) add quality.md, quality_cells.csv, a
    quality-against-activation figure per target and, with `examples`, each unit's dataset examples."""
    from ..images import check_folder_writable
    from .comparison import TARGET_KINDS, compare, write_comparison

    if targets not in TARGET_KINDS:
        raise FvoptError(f"report targets '{targets}' is not one of: {', '.join(TARGET_KINDS)}")
    if not str(out).strip():
        raise FvoptError("the report folder needs a name, not an empty one (e.g. --out report)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FvoptError(f"report output '{out}' is a file; --out names a folder for the report's files")
    store = Store(db, readonly=True)
    try:
        rows = store.rows("done")
        failed = store.rows("failed")
    finally:
        store.close()
    if not rows:
        raise FvoptError(
            f"results database '{db}' holds no finished cells"
            + (f" ({len(failed)} failed: see their errors with sqlite3)" if failed else "")
        )
    check_folder_writable(out, "report folder")
    written: list[Path] = []
    try:
        cells = cell_metrics(rows)
        summary = summarize(cells)
        for stem, table, columns, title in (
            (out / "cells", cells, CELL_COLUMNS, f"All cells ({len(cells)})"),
            (out / "summary", summary, SUMMARY_COLUMNS, "Medians over seeds"),
        ):
            write_table(table, columns, stem, title)
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
        curves = []
        for axis in ("time", "passes"):
            plot_convergence(rows, axis, out / f"convergence_{axis}.png")
            written.append(out / f"convergence_{axis}.png")
            curves.append(
                (
                    out / f"convergence_{axis}.png",
                    f"Best objective against {'wall time' if axis == 'time' else 'model passes'} per problem",
                )
            )
        several = len({r.get("model") for r in rows}) > 1
        grids = []
        for model, target in problems(rows):
            # JPEG: these grids of noisy, photo-like images are ten times smaller than as PNG
            name = f"images_{slug(str(model)) + '_' if several else ''}{slug(target)}.jpg"
            plot_image_grid(rows, target, out / name, model)
            written.append(out / name)
            grids.append((out / name, problem_title(model, target, rows)))
        # always written, so that an earlier report's list of failures never outlives them
        (out / "failed.md").write_text(failed_markdown(failed))
        written.append(out / "failed.md")
        if exports:  # the traces for other tools: one tidy CSV, and IOHprofiler's format (folder and zip)
            from .export import export_iohprofiler, export_tidy_csv, zip_folder

            export_iohprofiler(rows, out / "iohprofiler")
            written += [
                export_tidy_csv(rows, out / "traces.csv"),
                out / "iohprofiler",
                zip_folder(out / "iohprofiler", out / "iohprofiler.zip"),
            ]
        comparison = compare(rows, failed, targets)
        by_factor = tuple(
            compare(rows, failed, targets, factor=f)
            for f in ("strategy", "param")
            if len({r["param"] for r in rows}) > 1
        )
        written += write_comparison(comparison, out, by_factor)
        from .quality_report import write_quality

        quality, files = write_quality(rows, out, examples=examples)  # None when no cell was judged
        written += files
        if html:
            from .html_report import write_html

            name = rows[0].get("spec_name") or Path(db).stem
            written.append(
                write_html(
                    out / "report.html",
                    f"Benchmark report: {name}",
                    rows,
                    failed,
                    comparison,
                    (summary, SUMMARY_COLUMNS),
                    curves,
                    grids,
                    by_factor,
                    quality=quality,
                )
            )
    except OSError as err:
        raise FvoptError(
            f"cannot write the report into '{out}': {err.strerror or err} ({len(written)} files written before it)"
        ) from None
    return sorted(written)


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
