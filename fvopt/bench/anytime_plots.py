"""Figures of the fixed-target and fixed-budget views: run-time ECDFs and normalized best-so-far
curves, one line per strategy, passes and seconds side by side (as IOHanalyzer shows them).
A strategy with runs that stopped early says so in its legend entry and ends those runs with an x."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .anytime import AXES, Runs, curves, ecdf, targets_of


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _colors(labels: list[str]) -> dict[str, tuple]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def legend_label(runs: Runs, label: str) -> str:
    mine = runs.of(label)
    early, failed = sum(r.early for r in mine), runs.failed.get(label, 0)
    notes = [f"{early}/{len(mine)} stopped early" if early else "", f"{failed} failed" if failed else ""]
    notes = [n for n in notes if n]
    return label + (f" ({', '.join(notes)})" if notes else "")


def plot_ecdf(runs: Runs, path: Path, kind: str = "fractions") -> None:
    """Share of (run, target) pairs solved against passes (log axis) and seconds."""
    plt = _pyplot()
    labels = [label for label in runs.labels if runs.of(label)]
    color = _colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, axis in zip(axes, AXES):
        top = max(r.length[axis] for r in runs.runs)
        low = min((r.passes if axis == "passes" else r.seconds)[0] for r in runs.runs if len(r.passes))
        xs = np.geomspace(max(low, 1e-3), top, 300)
        for label in labels:
            ax.step(xs, ecdf(runs, label, xs, axis, kind), where="post", color=color[label], lw=1.6,
                    label=legend_label(runs, label))
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(AXES[axis], fontsize=9)
        ax.set_ylabel("share of (run, target) pairs reached", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    targets = ("targets " + ", ".join(f"{t:g}" for t in sorted({t for ts in targets_of(runs, kind).values() for t in ts}))
               if kind == "fractions" else "budget-based targets")
    fig.suptitle(f"Run-time ECDF over all problems and {targets} (of the best value of each problem)", fontsize=10)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fixed_budget(runs: Runs, path: Path) -> None:
    """Normalized best-so-far against passes and seconds: median over all runs (problems and
    seeds) with the interquartile band; an x where a run stopped early."""
    plt = _pyplot()
    labels = [label for label in runs.labels if runs.of(label)]
    color = _colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, axis in zip(axes, AXES):
        for label in labels:
            xs, median, low, high = curves(runs, label, axis)
            ax.plot(xs, median, color=color[label], lw=1.6, label=legend_label(runs, label))
            ax.fill_between(xs, low, high, color=color[label], alpha=0.12, lw=0)
            for r in runs.of(label):
                if r.early and len(r.best):
                    ax.plot(r.length[axis], r.best[-1], "x", color=color[label], ms=5)
        ax.set_xlabel(AXES[axis], fontsize=9)
        ax.set_ylabel("best so far / best of the problem", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Fixed budget: normalized best-so-far, median and interquartile band over all runs "
                 "(x: a run that stopped early)", fontsize=10)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
