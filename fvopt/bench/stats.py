"""Paired statistics across problems: which strategies differ, after correction, and by how much.

Cells are paired by (model, target, seed): the same problem and the same starting point (the
seed draws the start), so strategies are compared block by block, as in Demšar (2006) and
Benavoli et al. (2016):

- a Friedman test over all strategies (scipy.stats.friedmanchisquare): does any differ?
- two-sided Wilcoxon signed-rank tests on every pair (scipy.stats.wilcoxon) with Holm's
  correction (statsmodels): which pairs differ? Unlike the Nemenyi test, a pair's p-value does not
  depend on which other strategies are in the comparison;
- effect sizes: the median paired difference and the matched-pairs rank-biserial correlation;
- mean ranks and a critical-difference diagram (scikit-posthocs) joining strategies whose
  difference is not significant after correction;
- a win-rate matrix: the share of paired blocks where A beats B (ties count one half), with a 95%
  bootstrap interval over blocks.

Scores are normalized per (model, target) by the largest final value of the measure any cell of
the problem reached (`rows.measure_references`), so problems of different scales weigh alike.
Blocks missing a strategy (a failed cell) are left out of every paired test, and the report says
how many.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .rows import algorithm_labels, measure_references, problem_of, stopped_early

ALPHA = 0.05
TEST_NOTE = (
    "Friedman test over all strategies (cells paired by model, target and seed), then two-sided Wilcoxon "
    "signed-rank tests on every pair with Holm's correction for multiple comparisons: paired, "
    "rank-based tests, because scores of different problems are neither normal nor on one scale, and "
    "a pair's corrected p-value does not depend on the other strategies compared (unlike Nemenyi's test; "
    "Benavoli et al., 2016). Effect size: median paired difference and matched-pairs rank-biserial "
    "correlation (+1: the first strategy wins every pair)."
)


@dataclass
class PairedScores:
    """Scores in blocks (rows: model, target, seed) by strategy (columns); blocks where a strategy
    has no score are kept in `dropped` (how many) and left out of the table."""

    table: pd.DataFrame
    dropped: int
    stopped_early: dict[str, int]
    measure: str
    factor: str = "algorithm"


FACTORS = ("algorithm", "strategy", "param")


def paired_scores(rows: list[dict], measure: str = "robust_value", factor: str = "algorithm") -> PairedScores:
    """Each finished cell's final `measure` divided by the best of its problem (model, target),
    arranged in blocks. `factor` is what is compared: "algorithm" (strategy with parameterization;
    blocks: model, target, seed), "strategy" (blocks also by parameterization: optimizers compared
    on the same image space) or "param" (blocks also by strategy). Cells that stopped early keep
    the score of the best point they kept (that is what a user gets) and are counted."""
    if factor not in FACTORS:
        raise ValueError(f"factor {factor!r}: allowed are {', '.join(FACTORS)}")
    labels = algorithm_labels(rows)
    top = measure_references(rows, measure)
    records, early = [], {}
    for i, r in enumerate(rows):
        value = r["final"].get(measure)
        value = float(value) if value is not None and math.isfinite(value) else math.nan
        name = {"algorithm": labels[i], "strategy": r["strategy"], "param": r["param"]}[factor]
        other = {"algorithm": "", "strategy": r["param"], "param": r["strategy"]}[factor]
        records.append(
            {
                "model": str(r.get("model")),
                "target": r["target"],
                "seed": r["seed"],
                "other": other,
                "strategy": name,
                "value": value,
                "top": top.get(problem_of(r), math.nan),
            }
        )
        early[name] = early.get(name, 0) + stopped_early(r)
    frame = pd.DataFrame(records)
    frame["score"] = np.where(frame["top"] > 0, frame["value"] / frame["top"], np.nan)
    table = frame.pivot_table(
        index=["model", "target", "seed", "other"], columns="strategy", values="score", aggfunc="first", dropna=False
    )
    complete = table.dropna()
    return PairedScores(complete, len(table) - len(complete), early, measure, factor)


def friedman(table: pd.DataFrame) -> dict:
    """Friedman's chi-square over the strategies (columns); needs 3 or more strategies and 2 or
    more blocks, and says so otherwise."""
    k, n = table.shape[1], table.shape[0]
    if k < 3 or n < 2:
        return {
            "statistic": math.nan,
            "p": math.nan,
            "note": f"not run: needs 3 or more compared and 2 or more complete blocks (have {k} and {n})",
        }
    stat, p = stats.friedmanchisquare(*[table[c].to_numpy() for c in table.columns])
    return {"statistic": float(stat), "p": float(p), "note": f"{k} compared, {n} blocks"}


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation: (sum of ranks of positive differences - sum of
    negative ones) / their total, zero differences left out; +1 when every pair favours the first."""
    d = diff[diff != 0]
    if not len(d):
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def pairwise(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair (a, b) of strategies: blocks, median difference a - b, rank-biserial effect,
    Wilcoxon p, Holm-corrected p, and whether it is significant at `alpha` after correction."""
    from statsmodels.stats.multitest import multipletests

    rows = []
    for a, b in itertools.combinations(table.columns, 2):
        diff = (table[a] - table[b]).to_numpy()
        if np.all(diff == 0):
            p = 1.0  # identical results: no evidence of a difference (scipy refuses all-zero input)
        else:
            p = float(stats.wilcoxon(table[a], table[b], zero_method="zsplit", alternative="two-sided").pvalue)
        rows.append(
            {
                "a": a,
                "b": b,
                "blocks": len(diff),
                "median_diff": float(np.median(diff)),
                "rank_biserial": rank_biserial(diff),
                "p": p,
            }
        )
    out = pd.DataFrame(rows, columns=["a", "b", "blocks", "median_diff", "rank_biserial", "p"])
    if len(out):
        reject, corrected, _, _ = multipletests(out["p"], alpha=alpha, method="holm")
        out["p_holm"], out["significant"] = corrected, reject
    else:
        out["p_holm"], out["significant"] = [], []
    return out


def holm_power(blocks: int, pairs: int, alpha: float = ALPHA) -> tuple[float, float, int]:
    """(smallest exact two-sided Wilcoxon p with `blocks` pairs, what Holm's first step needs for
    `pairs` pairs, the fewest blocks whose smallest p passes that step).

    Why: with n blocks all differences one way give the smallest p, 2 / 2**n; Holm's first step
    rejects a p of at most alpha / pairs. Below the blocks it names, no pair can be significant,
    whatever the results: the report says so, and how many blocks would suffice."""
    needed = alpha / pairs
    fewest = 1
    while 2 / 2**fewest > needed:
        fewest += 1
    return 2 / 2**blocks, needed, fewest


def mean_ranks(table: pd.DataFrame) -> pd.Series:
    """Average rank of each strategy over blocks: 1 = the highest score of the block (ties share)."""
    ranks = table.apply(lambda row: pd.Series(stats.rankdata(-row.to_numpy()), index=table.columns), axis=1)
    return ranks.mean().sort_values()


def significance_matrix(table: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Holm-corrected p-values as a symmetric strategy-by-strategy matrix (1 on the diagonal), the
    form scikit-posthocs' critical-difference diagram reads."""
    names = list(table.columns)
    matrix = pd.DataFrame(np.ones((len(names), len(names))), index=names, columns=names)
    for _, r in pairs.iterrows():
        matrix.loc[r["a"], r["b"]] = matrix.loc[r["b"], r["a"]] = r["p_holm"]
    return matrix


def win_rates(table: pd.DataFrame, samples: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Share of blocks where the row strategy beats the column strategy (ties count one half), and
    the 2.5th and 97.5th percentiles of that share over blocks resampled with replacement."""
    values = table.to_numpy()
    names = list(table.columns)
    wins = (values[:, :, None] > values[:, None, :]) + 0.5 * (values[:, :, None] == values[:, None, :])
    rate = wins.mean(0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    boot = wins[picks].mean(1)
    lo, hi = np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)
    for m in (rate, lo, hi):
        np.fill_diagonal(m, np.nan)
    frame = lambda m: pd.DataFrame(m, index=names, columns=names)  # noqa: E731
    return {"rate": frame(rate), "low": frame(lo), "high": frame(hi)}
