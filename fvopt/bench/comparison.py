"""The comparison part of a benchmark report: fixed-target and fixed-budget views, paired
statistics, and failures, computed once and written as CSV, Markdown and figures (the HTML report
reads the same objects)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import anytime, metrics, stats
from .rows import cell_name
from .plots import plot_critical_difference, plot_ecdf, plot_fixed_budget, plot_win_rates
from .tables import markdown_table, write_csv

TARGET_KINDS = ("fractions", "budget")


@dataclass
class Comparison:
    """Everything the report says about which strategy is better, and how sure it is."""

    runs: anytime.Runs
    target_kind: str
    fixed_target: list[dict]
    fixed_budget: list[dict]
    paired: stats.PairedScores
    friedman: dict
    pairs: pd.DataFrame
    ranks: pd.Series
    wins: dict[str, pd.DataFrame] | None
    figures: dict[str, Path] = field(default_factory=dict)
    slow_steps: list[str] = field(default_factory=list)  # cells whose slowest step was far above their median

    def conclusions(self) -> list[str]:
        """Plain sentences: the Friedman verdict, then each pair that differs after Holm's correction."""
        table = self.paired.table
        blocks = {
            "algorithm": "model, target, seed",
            "strategy": "model, target, seed, parameterization",
            "param": "model, target, seed, strategy",
        }[self.paired.factor]
        lines = [
            f"Paired blocks ({blocks}): {len(table)} complete"
            + (f", {self.paired.dropped} left out because a strategy has no score there" if self.paired.dropped else "")
            + f"; score = final {self.paired.measure} / best of the problem."
        ]
        f = self.friedman
        if math.isnan(f["p"]):
            lines.append(f"Friedman test {f['note']}.")
        else:
            lines.append(
                f"Friedman test: chi2 = {f['statistic']:.1f}, p = {f['p']:.2g} ({f['note']}): "
                + ("they differ." if f["p"] < stats.ALPHA else "no difference shown at alpha 0.05.")
            )
        if len(self.pairs):
            same = self.pairs[~self.pairs["significant"]]
            listed = ": not shown to differ: " + "; ".join(
                f"{r.a} vs {r.b} (p_holm {r.p_holm:.2g})" for r in same.itertuples()
            )
            lines.append(
                f"{int(self.pairs['significant'].sum())} of {len(self.pairs)} pairs differ after Holm's "
                "correction (alpha 0.05)"
                + (listed if 0 < len(same) <= 12 else "; see the pairwise table" if len(same) else ".")
            )
            floor, needed, fewest = stats.holm_power(len(table), len(self.pairs))
            if floor > needed:  # exact Wilcoxon: all n differences one way gives p = 2 / 2**n, the smallest
                pairs = f"{len(self.pairs)} pair{'s' * (len(self.pairs) != 1)}"
                lines.append(
                    f"With {len(table)} blocks no pair can be significant: the smallest exact two-sided Wilcoxon "
                    f"p-value is 2/2^{len(table)} = {floor:.2g}, above the {needed:.2g} that Holm's first step "
                    f"needs for {pairs}; {fewest} blocks would be needed (more seeds or targets)."
                )
        early = {k: v for k, v in self.paired.stopped_early.items() if v}
        if early:
            lines.append(
                "Runs that stopped early (scored with the best point they kept): "
                + ", ".join(f"{k} {v}" for k, v in sorted(early.items()))
                + "."
            )
        if self.slow_steps:
            lines.append(
                f"Cells whose slowest step took over {metrics.SLOW_STEP_RATIO:g}x their median step and over "
                f"{metrics.SLOW_STEP_SECONDS:g} s (a stall that took time from that cell only; step_flag and "
                f"max_step_seconds in the cells table): {len(self.slow_steps)}"
                + (": " + "; ".join(self.slow_steps) if len(self.slow_steps) <= 10 else "")
                + "."
            )
        if self.runs.failed:
            lines.append(
                "Cells that failed without a result (not in any table): "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.runs.failed.items()))
                + "."
            )
        if self.runs.unscored:
            lines.append(
                "Problems that cannot be normalized (left out of the anytime views): "
                + "; ".join(self.runs.unscored)
                + "."
            )
        return lines


def compare(
    rows: list[dict],
    failed: list[dict] | None = None,
    target_kind: str = "fractions",
    measure: str = "robust_value",
    factor: str = "algorithm",
) -> Comparison:
    """All views of a set of finished cells (and the failed ones, which are counted); `factor`:
    what the paired statistics compare (see stats.paired_scores)."""
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"target kind {target_kind!r}: allowed are {', '.join(TARGET_KINDS)}")
    runs = anytime.collect_runs(rows, failed)
    paired = stats.paired_scores(rows, measure, factor)
    enough = paired.table.shape[1] >= 2 and len(paired.table) >= 1
    pairs = stats.pairwise(paired.table) if enough else stats.pairwise(paired.table.iloc[:, :0])
    return Comparison(
        runs,
        target_kind,
        anytime.fixed_target_table(runs, target_kind) if runs.runs else [],
        anytime.fixed_budget_table(runs) if runs.runs else [],
        paired,
        stats.friedman(paired.table),
        pairs,
        stats.mean_ranks(paired.table) if len(paired.table) else pd.Series(dtype=float),
        stats.win_rates(paired.table) if enough else None,
        slow_steps=slow_step_cells(rows),
    )


def slow_step_cells(rows: list[dict]) -> list[str]:
    """The cells whose slowest step was far above their median step (metrics.slow_step), named with both."""
    out = []
    for r in rows:
        median, most = metrics.step_seconds(r)
        if metrics.slow_step(median, most):
            out.append(f"{cell_name(r)} (slowest step {most:.2g} s, median {median:.2g} s)")
    return out


FIXED_TARGET_COLUMNS = [
    "strategy",
    "target",
    "aRT_passes",
    "aRT_passes_p10",
    "aRT_passes_p50",
    "aRT_passes_p90",
    "aRT_seconds",
    "successes",
    "runs",
]
FIXED_BUDGET_COLUMNS = [
    "strategy",
    "runs",
    "stopped_early",
    "failed",
    "final_median",
    "auc_passes",
    "auc_passes_sem",
    "auc_seconds",
    "auc_seconds_sem",
    "early_reasons",
]
PAIR_COLUMNS = ["a", "b", "blocks", "median_diff", "rank_biserial", "p", "p_holm", "significant"]


def win_rate_rows(wins: dict[str, pd.DataFrame]) -> list[dict]:
    rate = wins["rate"]
    return [
        {
            "strategy": a,
            **{
                b: f"{rate.loc[a, b]:.2f} [{wins['low'].loc[a, b]:.2f}, {wins['high'].loc[a, b]:.2f}]" if a != b else ""
                for b in rate.columns
            },
        }
        for a in rate.index
    ]


def significance_markdown(c: Comparison, level: str = "###") -> str:
    """The conclusions, the paired tests, mean ranks and win rates as Markdown (the studies' READMEs
    and the report's comparison.md share it)."""
    parts = [
        *[f"- {line}" for line in c.conclusions()],
        "",
        f"{level} Paired tests",
        "",
        stats.TEST_NOTE,
        "",
        markdown_table(c.pairs.to_dict("records"), PAIR_COLUMNS),
        "",
        f"{level} Mean ranks (1 = best of the block)",
        "",
        markdown_table([{"strategy": k, "mean_rank": float(v)} for k, v in c.ranks.items()], ["strategy", "mean_rank"]),
    ]
    if c.wins is not None:
        parts += [
            "",
            f"{level} Win rates (row beats column; 95% bootstrap interval over blocks)",
            "",
            markdown_table(win_rate_rows(c.wins), ["strategy", *c.wins["rate"].columns]),
        ]
    return "\n".join(parts)


FACTOR_TITLES = {
    "algorithm": "Strategies with their parameterizations",
    "strategy": "Optimizers compared on the same parameterization",
    "param": "Parameterizations compared under the same optimizer",
}


def write_comparison(comparison: Comparison, out: Path, also: tuple[Comparison, ...] = ()) -> list[Path]:
    """The comparison's tables (CSV and one Markdown file) and figures into `out`; `also`: the same
    data compared by another factor (optimizers alone, parameterizations alone), added as sections."""
    written = write_comparison_files(comparison, out, also)
    (out / "comparison.md").write_text(comparison_markdown(comparison, also))
    return written[:3] + [out / "comparison.md"] + written[3:]


def comparison_markdown(comparison: Comparison, also: tuple[Comparison, ...] = ()) -> str:
    """comparison.md: the significance of the differences (by `also`'s factors too), then the
    fixed-budget and fixed-target tables."""
    c = comparison
    parts = ["# Comparison", "", significance_markdown(c, level="##")]
    for other in also:
        parts += ["", f"## {FACTOR_TITLES[other.paired.factor]}", "", significance_markdown(other, level="###")]
    parts += [
        "",
        "## Fixed budget: area under the normalized best-so-far curve",
        "",
        markdown_table(c.fixed_budget, FIXED_BUDGET_COLUMNS),
        "",
        "## Fixed target: aRT ("
        + ("fractions of the best value of each problem" if c.target_kind == "fractions" else "budget-based targets")
        + ")",
        "",
        "aRT counts every pass of every run until the target, an unsuccessful run in full, divided by the "
        "successful runs (COCO); inf: no run reached the target. p10/p50/p90: bootstrap over runs.",
        "",
        markdown_table(c.fixed_target, FIXED_TARGET_COLUMNS),
    ]
    return "\n".join(parts) + "\n"


def write_comparison_files(comparison: Comparison, out: Path, also: tuple[Comparison, ...] = ()) -> list[Path]:
    """The comparison's CSV tables and figures into `out` (the figures are recorded in `figures`)."""
    c, written = comparison, []
    write_csv(c.fixed_target, FIXED_TARGET_COLUMNS, out / "fixed_target.csv")
    write_csv(c.fixed_budget, FIXED_BUDGET_COLUMNS, out / "fixed_budget.csv")
    write_csv(c.pairs.to_dict("records"), PAIR_COLUMNS, out / "pairwise.csv")
    written += [out / "fixed_target.csv", out / "fixed_budget.csv", out / "pairwise.csv"]
    if c.runs.runs:
        c.figures["ecdf"], c.figures["fixed_budget"] = out / "ecdf.png", out / "fixed_budget.png"
        legend = {label: anytime.legend_label(c.runs, label) for label in c.runs.labels}
        plot_ecdf(
            anytime.ecdf_series(c.runs, c.target_kind),
            legend,
            c.figures["ecdf"],
            anytime.ecdf_title(c.runs, c.target_kind),
        )
        plot_fixed_budget(*anytime.fixed_budget_series(c.runs), legend, c.figures["fixed_budget"])
    if c.wins is not None:
        c.figures["critical_difference"], c.figures["win_rate"] = out / "critical_difference.png", out / "win_rate.png"
        critical_difference(
            c,
            c.figures["critical_difference"],
            "Mean rank (1 = best); a bar joins strategies not different after Holm's correction",
        )
        plot_win_rates(c.wins, c.figures["win_rate"], "Win rate of the row strategy over the column strategy")
    for other in also:
        if other.wins is not None:
            path = out / f"critical_difference_{other.paired.factor}.png"
            critical_difference(
                other,
                path,
                f"{FACTOR_TITLES[other.paired.factor]}:\n"
                "mean rank (1 = best); a bar joins those not different after Holm's correction",
            )
            written.append(path)
    return written + list(c.figures.values())


def critical_difference(c: Comparison, path: Path, title: str) -> None:
    """The critical-difference diagram of a comparison's paired scores."""
    plot_critical_difference(
        stats.mean_ranks(c.paired.table), stats.significance_matrix(c.paired.table, c.pairs), path, title, stats.ALPHA
    )
