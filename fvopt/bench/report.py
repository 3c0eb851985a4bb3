"""Benchmark reports: convergence plots, final-image grids, and tables as Markdown and CSV."""
from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import FvoptError
from .store import Store

CELL_COLUMNS = ["model", "target", "strategy", "param", "param_used", "seed", "value", "robust_value", "best_seen",
                "time_to_90", "auc", "high_freq_share", "total_variation", "transfer_prob", "seconds", "forwards",
                "backwards", "passes", "budget_flag", "stop_reason"]
SUMMARY_COLUMNS = ["model", "target", "strategy", "param", "param_used", "seeds", "value", "robust_value", "best_seen",
                   "time_to_90", "auc", "high_freq_share", "total_variation", "transfer_prob", "seconds", "passes",
                   "overran"]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def passes_of(entry: dict) -> int:
    """Model passes of a cell or trace entry: a forward counts one, a backward two (as the budget does)."""
    return entry["forwards"] + 2 * entry["backwards"]


def best_at(trace: list[dict], xs: np.ndarray, axis: str) -> np.ndarray:
    """The best value reached by each x (time or passes); NaN before the first step."""
    if not trace:
        return np.full(len(xs), np.nan)
    if axis == "time":
        pts = np.array([r["time_s"] for r in trace])
    else:
        pts = np.array([passes_of(r) for r in trace])
    best = np.maximum.accumulate(np.array([r["best"] for r in trace]))
    idx = np.searchsorted(pts, xs, side="right") - 1
    return np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan)


def area_under(trace: list[dict], reference: float, horizon: float) -> float | None:
    """Mean over [0, horizon] of the best-so-far curve divided by `reference` (capped at 1; 0 before
    the first step), integrated exactly: the curve is a step function of time."""
    if not trace or horizon <= 0 or not reference > 0:
        return None
    times = [min(row["time_s"], horizon) for row in trace] + [horizon]
    best = np.maximum.accumulate(np.array([row["best"] for row in trace], dtype=float))
    share = np.minimum(best / reference, 1.0)
    return float(sum(s * (b - a) for s, a, b in zip(share, times[:-1], times[1:])) / horizon)


def cell_metrics(rows: list[dict]) -> list[dict]:
    """One flat record per cell, with time to 90% of the best cell of its problem (model, target)
    and the area under its best-versus-time curve (normalized by that best value and by the time
    budget, or by the cell's own duration when the budget has no seconds)."""
    reference = defaultdict(lambda: -math.inf)
    for r in rows:  # per (model, target): two models' values of one target are not comparable
        key = (r.get("model"), r["target"])
        best = r["final"].get("best_seen")
        if best is not None and math.isfinite(best):
            reference[key] = max(reference[key], best)
    out = []
    for r in rows:
        trace, ref = r["trace"] or [], reference[(r.get("model"), r["target"])]
        horizon = r["budget"].get("seconds") or (trace[-1]["time_s"] if trace else 0)
        t90 = auc = None
        if ref > 0 and trace:
            t90 = next((row["time_s"] for row in trace if row["best"] >= 0.9 * ref), None)
            auc = area_under(trace, ref, horizon)
        overran = bool(r["budget"].get("seconds") and r["seconds"] > r["budget"]["seconds"] + (r["max_step_seconds"] or 0))
        f = r["final"]
        out.append({
            "model": r.get("model"), "target": r["target"], "strategy": r["strategy"], "param": r["param"], "param_used": r["param_used"],
            "seed": r["seed"], "value": f["value"], "robust_value": f["robust_value"], "best_seen": f.get("best_seen"),
            "time_to_90": t90, "auc": auc, "high_freq_share": f.get("high_freq_share"),
            "total_variation": f.get("total_variation"), "transfer_prob": f.get("transfer_prob"),
            "seconds": r["seconds"], "forwards": r["forwards"], "backwards": r["backwards"],
            "passes": passes_of(r), "budget_flag": "OVERRAN" if overran else "",
            "stop_reason": r["stop_reason"],
        })
    return out


def summarize(cells: list[dict]) -> list[dict]:
    """Medians over seeds per (model, target, strategy, parameterization): never across models."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c.get("model"), c["target"], c["strategy"], c["param"], c["param_used"])].append(c)
    out = []
    for (model, target, strategy, param, used), members in groups.items():
        row = {"model": model, "target": target, "strategy": strategy, "param": param, "param_used": used,
               "seeds": len(members), "overran": sum(1 for m in members if m["budget_flag"])}
        for key in ("value", "robust_value", "best_seen", "time_to_90", "auc", "high_freq_share", "total_variation",
                    "transfer_prob", "seconds", "passes"):
            values = [m[key] for m in members if m[key] is not None]
            row[key] = float(np.median(values)) if values else None
        out.append(row)
    return sorted(out, key=lambda r: (str(r["model"]), r["target"], -(r["robust_value"] or -math.inf)))


def _fmt(value) -> str:
    """A table cell: floats to 4 significant digits, '-' for a missing or NaN value."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows])


def write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_table(rows: list[dict], columns: list[str], stem: Path, title: str) -> None:
    write_csv(rows, columns, stem.with_suffix(".csv"))
    stem.with_suffix(".md").write_text(f"# {title}\n\n" + markdown_table(rows, columns) + "\n")


def problems(rows: list[dict]) -> list[tuple[str | None, str]]:
    """The (model, target) pairs of `rows`: one panel, one image grid, one normalization each."""
    return sorted({(r.get("model"), r["target"]) for r in rows}, key=lambda p: (str(p[0]), p[1]))


def _title(model: str | None, target: str, rows: list[dict]) -> str:
    return target if len({r.get("model") for r in rows}) == 1 else f"{model}: {target}"


def plot_convergence(rows: list[dict], axis: str, path: Path) -> None:
    """One panel per problem (model, target) in a grid of up to 3 columns; color = strategy, dash =
    parameterization."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    targets = problems(rows)
    strategies = sorted({r["strategy"] for r in rows})
    params = sorted({r["param"] for r in rows})
    cmap = plt.get_cmap("tab10" if len(strategies) <= 10 else "tab20")
    color = {s: cmap(i % cmap.N) for i, s in enumerate(strategies)}
    dashes = ["-", "--", ":", "-."]
    style = {p: dashes[i % len(dashes)] for i, p in enumerate(params)}
    cols = min(3, len(targets))
    nrows = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.8 * cols + 2.4, 3.6 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, (model, target) in zip(axes.flat, targets):
        mine = [r for r in rows if (r.get("model"), r["target"]) == (model, target)]
        if axis == "time":
            top = max(r["budget"].get("seconds") or r["seconds"] for r in mine)
        else:
            top = max(passes_of(r) for r in mine)
        xs = np.linspace(0, top, 200)
        groups: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        for r in mine:
            groups[(r["strategy"], r["param"])].append(best_at(r["trace"] or [], xs, axis))
        for (strategy, param), curves in sorted(groups.items()):
            stack = np.vstack(curves)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first step
                med = np.nanmedian(stack, 0)
                lo, hi = np.nanpercentile(stack, 25, 0), np.nanpercentile(stack, 75, 0)
            ax.plot(xs, med, color=color[strategy], ls=style[param], lw=1.5)
            ax.fill_between(xs, lo, hi, color=color[strategy], alpha=0.15, lw=0)
        ax.set_title(_title(model, target, rows), fontsize=10)
        ax.set_xlabel("wall time (s)" if axis == "time" else "model passes (forward 1, backward 2)", fontsize=8)
        ax.set_ylabel("best objective so far", fontsize=8)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=color[s], lw=2, label=s) for s in strategies]
    if len(params) > 1:
        handles += [Line2D([], [], color="none", label="")]
        handles += [Line2D([], [], color="gray", ls=style[p], lw=1.5, label=p) for p in params]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(f"Best activation versus {'wall time' if axis == 'time' else 'model passes'}: median and "
                 "interquartile band over seeds", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_image_grid(rows: list[dict], target: str, path: Path, model: str | None = None) -> None:
    """Final images of one target (of `model`, when given): strategies down, parameterizations
    across (lowest seed); with a single parameterization, seeds across instead, so the grid shows
    how much the result varies."""
    path = Path(path)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    mine = [r for r in rows if r["target"] == target and r["image"] and (model is None or r.get("model") == model)]
    strategies = sorted({r["strategy"] for r in mine})
    params = sorted({r["param"] for r in mine})
    if len(params) == 1:
        columns = sorted({r["seed"] for r in mine})
        column_of, title = (lambda r: r["seed"]), (lambda seed: f"{params[0]}, seed {seed}")
    else:
        columns = params
        column_of, title = (lambda r: r["param"]), str
    first = {}
    for r in sorted(mine, key=lambda r: r["seed"]):
        first.setdefault((r["strategy"], column_of(r)), r)
    fig, axes = plt.subplots(len(strategies), len(columns), figsize=(2.3 * len(columns) + 1, 2.3 * len(strategies)),
                             squeeze=False)
    for i, s in enumerate(strategies):
        for j, c in enumerate(columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            r = first.get((s, c))
            if r is not None:
                ax.imshow(Image.open(io.BytesIO(r["image"])))
                ax.set_xlabel(f"{r['final']['robust_value']:.3g} robust", fontsize=7)
            if i == 0:
                ax.set_title(title(c), fontsize=9)
            if j == 0:
                ax.set_ylabel(s, fontsize=9)
    fig.suptitle(target if model is None else _title(model, target, rows), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title above the column names
    fig.savefig(path, dpi=110, pil_kwargs={"quality": 90} if path.suffix == ".jpg" else None)
    plt.close(fig)


def write_report(db: str | Path, out: str | Path, targets: str = "fractions", html: bool = True,
                 exports: bool = True) -> list[Path]:
    """Every figure and table for the finished cells of `db` into the folder `out` (files of an
    earlier report there are rewritten), the comparison (fixed-target and fixed-budget views,
    paired statistics; `targets`: "fractions" of each problem's best, or COCO-style "budget"-based
    ones), with `html` all of it in one self-contained report.html, and with `exports` every trace
    point as traces.csv and in IOHprofiler's format; returns the files written."""
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
        raise FvoptError(f"results database '{db}' holds no finished cells"
                         + (f" ({len(failed)} failed: see their errors with sqlite3)" if failed else ""))
    check_folder_writable(out, "report folder")
    written: list[Path] = []
    try:
        cells = cell_metrics(rows)
        summary = summarize(cells)
        for stem, table, columns, title in ((out / "cells", cells, CELL_COLUMNS, f"All cells ({len(cells)})"),
                                            (out / "summary", summary, SUMMARY_COLUMNS, "Medians over seeds")):
            write_table(table, columns, stem, title)
            written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
        curves = []
        for axis in ("time", "passes"):
            plot_convergence(rows, axis, out / f"convergence_{axis}.png")
            written.append(out / f"convergence_{axis}.png")
            curves.append((out / f"convergence_{axis}.png", f"Best objective against {'wall time' if axis == 'time' else 'model passes'} per problem"))
        several = len({r.get("model") for r in rows}) > 1
        grids = []
        for model, target in problems(rows):
            # JPEG: these grids of noisy, photo-like images are ten times smaller than as PNG
            name = f"images_{slug(str(model)) + '_' if several else ''}{slug(target)}.jpg"
            plot_image_grid(rows, target, out / name, model)
            written.append(out / name)
            grids.append((out / name, _title(model, target, rows)))
        # always written, so that an earlier report's list of failures never outlives them
        (out / "failed.md").write_text("# Failed cells\n\n" + ("\n".join(
            f"- {r.get('model')} {r['target']} {r['strategy']} {r['param']} seed {r['seed']}: {r['error']}"
            for r in failed) if failed else "None: every cell of the database finished.") + "\n")
        written.append(out / "failed.md")
        if exports:  # the traces for other tools: one tidy CSV, and IOHprofiler's format (folder and zip)
            from .export import export_iohprofiler, export_tidy_csv, zip_folder
            export_iohprofiler(rows, out / "iohprofiler")
            written += [export_tidy_csv(rows, out / "traces.csv"), out / "iohprofiler",
                        zip_folder(out / "iohprofiler", out / "iohprofiler.zip")]
        comparison = compare(rows, failed, targets)
        by_factor = tuple(compare(rows, failed, targets, factor=f) for f in ("strategy", "param")
                          if len({r["param"] for r in rows}) > 1)
        written += write_comparison(comparison, out, by_factor)
        if html:
            from .html_report import write_html
            name = rows[0].get("spec_name") or Path(db).stem
            written.append(write_html(out / "report.html", f"Benchmark report: {name}", rows, failed, comparison,
                                      (summary, SUMMARY_COLUMNS), curves, grids, by_factor))
    except OSError as err:
        raise FvoptError(f"cannot write the report into '{out}': {err.strerror or err} ({len(written)} files "
                         "written before it)") from None
    return sorted(written)
