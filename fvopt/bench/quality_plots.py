"""Quality against activation, one figure per target (the plots layer: draws, never decides).

Where high activation and quality part ways: each panel puts the cells' robust activation on x and
one quality measure on y, a color per strategy, and draws the controls of the same unit (uniform
gray, uniform noise, a random reference image) as horizontal lines, so a cloud under a line is seen
to mean nothing. Records come from quality_report.quality_records (flat dicts per cell).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import colors, new_figure

CONTROL_STYLE = {"gray": ("0.45", "--"), "noise": ("tab:red", ":"), "refimage": ("tab:green", "-.")}


def plot_quality_scatter(records: list[dict], measures: list[str], path: Path, title: str, reference: str) -> None:
    """One panel per measure for the cells of one target: robust activation (x) against the measure (y)."""
    shown = [m for m in measures if any(_finite(r.get(m)) for r in records)]
    if not shown:
        return
    labels = sorted({r["strategy"] for r in records})
    color = colors(labels)
    cols = min(3, len(shown))
    nrows = -(-len(shown) // cols)
    fig = new_figure((4.3 * cols + 2.2, 3.4 * nrows + 0.9))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, shown):
        for label in labels:
            mine = [
                r for r in records if r["strategy"] == label and _finite(r.get(m)) and _finite(r.get("robust_value"))
            ]
            if not mine:
                continue
            informative = np.array([r.get(f"{m}_informative") is not False for r in mine])
            x = np.array([r["robust_value"] for r in mine])
            y = np.array([r[m] for r in mine])
            ax.scatter(x[informative], y[informative], s=18, color=color[label], label=label)
            ax.scatter(x[~informative], y[~informative], s=18, facecolors="none", edgecolors=color[label])
        for control, (c, ls) in CONTROL_STYLE.items():
            values = [r.get(f"{m}_{control}") for r in records if _finite(r.get(f"{m}_{control}"))]
            if values:
                ax.axhline(float(np.median(values)), color=c, ls=ls, lw=1, label=f"control: {control}")
        ax.set_xlabel("robust activation (common evaluator)", fontsize=8)
        ax.set_ylabel(m, fontsize=8)
        ax.tick_params(labelsize=7)
    seen: dict = {}
    for ax in axes.flat[: len(shown)]:
        handles, names = ax.get_legend_handles_labels()
        for h, n in zip(handles, names, strict=True):
            seen.setdefault(n, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="center right", fontsize=7, frameon=False)
    fig.suptitle(
        f"{title}: quality against activation (hollow: a control matched or beat that cell)\nreference: {reference}",
        fontsize=9,
    )
    fig.subplots_adjust(right=1 - 2.0 / (4.3 * cols + 2.2), hspace=0.45, wspace=0.35)
    fig.savefig(path, dpi=90)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
