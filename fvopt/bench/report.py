"""The top of the bench reports: `write_report` writes every table, figure and export of a
results database into one folder (and, with `html`, one self-contained report.html).

The layers below it, each importing only those under it:
rows (what a stored cell means, the reference value) -> tables, export -> plots -> metrics,
anytime, stats, analysis -> comparison -> html_report -> sections (the registry of report sections:
what each collects, its Markdown and its HTML) -> report, which loops over the sections.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FvoptError
from ..runtime.scoped import keeps_process_state
from .store import Store


@keeps_process_state  # generators, threads and backend switches restored on return (fvopt.runtime.scoped)
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
    from ..io.images import check_folder_writable
    from .comparison import TARGET_KINDS

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
    from .sections import SECTIONS, ReportData, render_section

    data = ReportData(rows, failed, out, targets, examples)
    try:
        blocks = []
        for name in SECTIONS:  # each section collects (writing its data files and figures), then renders
            block = render_section(name, data)
            if block is not None:
                blocks.append(block)
        if exports:  # the traces for other tools: one tidy CSV, and IOHprofiler's format (folder and zip)
            from .export import export_iohprofiler, export_tidy_csv, zip_folder

            export_iohprofiler(rows, out / "iohprofiler")
            data.written += [
                export_tidy_csv(rows, out / "traces.csv"),
                out / "iohprofiler",
                zip_folder(out / "iohprofiler", out / "iohprofiler.zip"),
            ]
        if html:
            from .html_report import write_html

            name = rows[0].get("spec_name") or Path(db).stem
            data.written.append(write_html(out / "report.html", f"Benchmark report: {name}", blocks))
    except OSError as err:
        raise FvoptError(
            f"cannot write the report into '{out}': {err.strerror or err} ({len(data.written)} files written before it)"
        ) from None
    return sorted(set(data.written))
