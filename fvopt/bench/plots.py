"""Every figure of a bench report, drawn through matplotlib's Figure API.

A figure here is a `matplotlib.figure.Figure` saved to its file: no `matplotlib.use`, no pyplot
figure manager, so drawing a report changes nothing in the process (the backend, the open
figures) for the program that asked for it. The functions take rows (the convergence curves and
image grids read them directly) or series computed above them (ECDFs, fixed-budget curves, ranks
and win rates), so this layer draws and never decides what is better.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from .rows import AXES, best_at, passes_of, problem_title, problems


def new_figure(figsize: tuple[float, float]):
    """A figure of its own (not registered with pyplot, so never left open)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def colors(labels: list[str]) -> dict[str, tuple]:
    """One color per label, in order: tab10, or tab20 beyond ten labels."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def plot_convergence(rows: list[dict], axis: str, path: Path) -> None:
    """One panel per problem (model, target) in a grid of up to 3 columns; color = strategy, dash =
    parameterization; median and interquartile band of the best so far over seeds."""
    from matplotlib.lines import Line2D

    targets = problems(rows)
    strategies = sorted({r["strategy"] for r in rows})
    params = sorted({r["param"] for r in rows})
    color = colors(strategies)
    dashes = ["-", "--", ":", "-."]
    style = {p: dashes[i % len(dashes)] for i, p in enumerate(params)}
    cols = min(3, len(targets))
    nrows = math.ceil(len(targets) / cols)
    fig = new_figure((4.8 * cols + 2.4, 3.6 * nrows + 0.6))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.flat[len(targets) :]:
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
                warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # columns before the first step
                med = np.nanmedian(stack, 0)
                lo, hi = np.nanpercentile(stack, 25, 0), np.nanpercentile(stack, 75, 0)
            ax.plot(xs, med, color=color[strategy], ls=style[param], lw=1.5)
            ax.fill_between(xs, lo, hi, color=color[strategy], alpha=0.15, lw=0)
        ax.set_title(problem_title(model, target, rows), fontsize=10)
        ax.set_xlabel("wall time (s)" if axis == "time" else AXES["passes"], fontsize=8)
        ax.set_ylabel("best objective so far", fontsize=8)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=color[s], lw=2, label=s) for s in strategies]
    if len(params) > 1:
        handles += [Line2D([], [], color="none", label="")]
        handles += [Line2D([], [], color="gray", ls=style[p], lw=1.5, label=p) for p in params]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(
        f"Best activation versus {'wall time' if axis == 'time' else 'model passes'}: median and "
        "interquartile band over seeds",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 0.96))
    fig.savefig(path, dpi=110)


def plot_image_grid(rows: list[dict], target: str, path: Path, model: str | None = None) -> None:
    """Final images of one target (of `model`, when given): strategies down, parameterizations
    across (lowest seed); with a single parameterization, seeds across instead, so the grid shows
    how much the result varies."""
    from PIL import Image

    path = Path(path)
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
    fig = new_figure((2.3 * len(columns) + 1, 2.3 * len(strategies)))
    axes = fig.subplots(len(strategies), len(columns), squeeze=False)
    for i, s in enumerate(strategies):
        for j, c in enumerate(columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            r = first.get((s, c))
            if r is not None:
                ax.imshow(Image.open(io.BytesIO(r["image"])))
                searched = r.get("param_used")  # what really ran: cmaes on fft searches fft:k=8
                note = f"\nsearched {searched}" if searched and searched != r["param"] else ""
                ax.set_xlabel(f"{r['final']['robust_value']:.3g} robust{note}", fontsize=7)
            if i == 0:
                ax.set_title(title(c), fontsize=9)
            if j == 0:
                ax.set_ylabel(s, fontsize=9)
    fig.suptitle(target if model is None else problem_title(model, target, rows), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title above the column names
    fig.savefig(path, dpi=110, pil_kwargs={"quality": 90} if path.suffix == ".jpg" else None)


def plot_ecdf(
    series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], legend: dict[str, str], path: Path, title: str
) -> None:
    """Run-time ECDFs, passes (log axis) and seconds side by side: `series[label][axis]` is
    (x, share of (run, target) pairs reached by x)."""
    color = colors(list(series))
    fig = new_figure((12, 4.4))
    axes = fig.subplots(1, 2)
    for ax, axis in zip(axes, AXES):
        for label, curves in series.items():
            xs, ys = curves[axis]
            ax.step(xs, ys, where="post", color=color[label], lw=1.6, label=legend[label])
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(AXES[axis], fontsize=9)
        ax.set_ylabel("share of (run, target) pairs reached", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_fixed_budget(
    series: dict[str, dict[str, tuple[np.ndarray, ...]]],
    ends: dict[str, dict[str, list[tuple[float, float]]]],
    legend: dict[str, str],
    path: Path,
) -> None:
    """Normalized best-so-far against passes and seconds: `series[label][axis]` is (x, median,
    25th, 75th percentile); `ends[label][axis]` the (x, y) where a run stopped early (an x)."""
    color = colors(list(series))
    fig = new_figure((12, 4.4))
    axes = fig.subplots(1, 2)
    for ax, axis in zip(axes, AXES):
        for label, curves in series.items():
            xs, median, low, high = curves[axis]
            ax.plot(xs, median, color=color[label], lw=1.6, label=legend[label])
            ax.fill_between(xs, low, high, color=color[label], alpha=0.12, lw=0)
            for x, y in ends.get(label, {}).get(axis, []):
                ax.plot(x, y, "x", color=color[label], ms=5)
        ax.set_xlabel(AXES[axis], fontsize=9)
        ax.set_ylabel("best so far / best of the problem", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Fixed budget: normalized best-so-far, median and interquartile band over all runs "
        "(x: a run that stopped early)",
        fontsize=10,
    )
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_critical_difference(ranks, significance, path: Path, title: str, alpha: float) -> None:
    """scikit-posthocs' critical-difference diagram: strategies at their mean `ranks` (a Series), a
    bar joining those whose corrected p-value in `significance` (a symmetric matrix) is >= alpha."""
    import scikit_posthocs as sp

    fig = new_figure((8, 0.9 + 0.28 * len(ranks)))
    ax = fig.subplots()
    sp.critical_difference_diagram(ranks, significance, ax=ax, alpha=alpha, label_props={"fontsize": 8})
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_win_rates(rates: dict, path: Path, title: str) -> None:
    """The win-rate matrix (`rates`: "rate", "low", "high" frames) as a heat map, each cell with its
    rate and bootstrap interval."""
    rate = rates["rate"]
    order = rate.mean(axis=1).sort_values(ascending=False).index
    rate, lo, hi = (rates[k].loc[order, order] for k in ("rate", "low", "high"))
    n = len(order)
    fig = new_figure((1.1 * n + 2.5, 0.8 * n + 1.5))
    ax = fig.subplots()
    image = ax.imshow(rate.to_numpy(), cmap="RdBu", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if i != j:
                ax.text(
                    j,
                    i,
                    f"{rate.iat[i, j]:.2f}\n[{lo.iat[i, j]:.2f}, {hi.iat[i, j]:.2f}]",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if abs(rate.iat[i, j] - 0.5) > 0.3 else "black",
                )
    ax.set_xticks(range(n), order, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n), order, fontsize=8)
    ax.set_xlabel("column strategy", fontsize=8)
    ax.set_ylabel("row strategy (cell: share of paired blocks it wins over the column)", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of paired blocks won")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
