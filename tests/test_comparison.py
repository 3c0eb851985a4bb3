"""The report's comparison on hand-made results whose answers are known: aRT, ECDFs, areas,
budget-based targets, paired tests, ranks, win rates, and failures counted as failures."""

import math

import numpy as np
import pytest

from fvopt.bench import anytime, stats
from fvopt.bench.comparison import compare, write_comparison


def cell(strategy, seed, points, robust=None, target="channel:x:1", model="m", param="fft", stop="passes"):
    """A stored row: `points` are (passes, seconds, best) after each step (forward passes only)."""
    trace = [
        {"step": i + 1, "time_s": s, "forwards": p, "backwards": 0, "value": b, "best": b}
        for i, (p, s, b) in enumerate(points)
    ]
    best = max(b for _, _, b in points) if points else None
    return {
        "model": model,
        "target": target,
        "strategy": strategy,
        "param": param,
        "param_used": param,
        "seed": seed,
        "budget": {"passes": 100},
        "stop_reason": stop,
        "trace": trace,
        "seconds": points[-1][1] if points else 0,
        "forwards": points[-1][0] if points else 0,
        "backwards": 0,
        "max_step_seconds": 1.0,
        "final": {"value": best, "robust_value": best if robust is None else robust, "best_seen": best},
    }


def test_art_counts_unsuccessful_runs_in_full_as_coco_does():
    # reference (best of the problem) = 10. Target 0.9 -> 9.
    rows = [
        cell("a", 0, [(10, 1.0, 5), (30, 3.0, 9), (100, 10.0, 9.5)]),  # hits 9 at 30 passes, 3 s
        cell("a", 1, [(50, 5.0, 2), (100, 10.0, 8)]),  # never: counts 100 passes, 10 s
        cell("a", 2, [(50, 4.0, 10)]),
    ]  # hits at 50 passes, 4 s (ran 50)
    runs = anytime.collect_runs(rows)
    art, ok = anytime.average_running_time(runs.runs, 0.9, "passes")
    assert ok == 2 and art == pytest.approx((30 + 100 + 50) / 2)
    art_s, _ = anytime.average_running_time(runs.runs, 0.9, "seconds")
    assert art_s == pytest.approx((3 + 10 + 4) / 2)
    assert anytime.average_running_time(runs.runs, 1.01, "passes") == (math.inf, 0)
    row = next(r for r in anytime.fixed_target_table(runs) if r["target"] == 0.9)
    assert (row["successes"], row["runs"]) == (2, 3) and row["aRT_passes"] == pytest.approx(90)
    assert row["aRT_passes_p10"] <= row["aRT_passes_p50"] <= row["aRT_passes_p90"]


def test_ecdf_is_the_share_of_run_target_pairs_reached_by_each_budget():
    rows = [cell("a", 0, [(10, 1.0, 5), (20, 2.0, 10)]), cell("b", 0, [(10, 1.0, 9.6), (20, 2.0, 9.6)])]
    runs = anytime.collect_runs(rows)
    # a: 0.5 reached at 10; 0.8, 0.9, 0.95, 0.99 at 20. b (0.96): 0.5, 0.8, 0.9, 0.95 at 10; 0.99 never.
    xs = np.array([5, 10, 20])
    assert list(anytime.ecdf(runs, "a", xs, "passes")) == [0.0, 0.2, 1.0]
    assert list(anytime.ecdf(runs, "b", xs, "passes")) == [0.0, 0.8, 0.8]


def test_area_under_the_normalized_curve_by_hand():
    (run,) = anytime.collect_runs([cell("a", 0, [(25, 1.0, 5), (50, 2.0, 10)])]).runs
    # 0 on [0, 25), 0.5 on [25, 50), 1 on [50, 100] -> (12.5 + 50) / 100
    assert anytime.area_under_curve(run, 100, "passes") == pytest.approx(0.625)
    assert anytime.area_under_curve(run, 4.0, "seconds") == pytest.approx((0.5 + 2.0) / 4)


def test_budget_based_targets_are_what_the_best_median_run_had_by_then():
    rows = [cell("a", s, [(10, 1.0, 4 + s), (100, 10.0, 10)]) for s in range(3)] + [
        cell("b", s, [(10, 1.0, 8), (100, 10.0, 8)]) for s in range(3)
    ]
    runs = anytime.collect_runs(rows)
    targets = anytime.budget_targets(runs, shares=(0.1, 1.0))[("m", "channel:x:1")]
    assert targets == [0.8, 1.0]  # at 10 passes b's median (0.8) beats a's (0.5); at 100, a's 1.0


def test_a_strategy_that_always_wins_ranks_first_with_win_rate_one():
    rng = np.random.default_rng(0)
    rows = []
    for target in ("channel:x:1", "channel:x:2"):
        for seed in range(6):
            base = rng.uniform(1, 2)
            for strategy, gain in (("best", 3.0), ("mid", 0.0), ("worst", -0.5)):
                rows.append(cell(strategy, seed, [(100, 1.0, base + gain + rng.uniform(0, 0.3))], target=target))
    paired = stats.paired_scores(rows)
    assert paired.table.shape == (12, 3) and paired.dropped == 0
    ranks = stats.mean_ranks(paired.table)
    assert list(ranks.index) == ["best", "mid", "worst"] and ranks["best"] == 1.0
    wins = stats.win_rates(paired.table)
    assert wins["rate"].loc["best", "mid"] == 1.0 and wins["rate"].loc["worst", "best"] == 0.0
    assert wins["low"].loc["best", "worst"] == 1.0  # every resample of the blocks keeps it at 1
    f = stats.friedman(paired.table)
    assert f["p"] < 1e-4
    pairs = stats.pairwise(paired.table).set_index(["a", "b"])
    # exact two-sided Wilcoxon with 12 pairs all one way: 2 / 2**12; Holm multiplies the smallest of
    # three by 3, the next by 2 but never below the one before: all three become 3 * 2 / 2**12
    assert pairs.loc[("best", "mid"), "p"] == pytest.approx(2 / 2**12)
    assert pairs.loc[("best", "mid"), "rank_biserial"] == 1.0 and pairs["significant"].all()
    assert list(pairs["p_holm"]) == pytest.approx([3 * 2 / 2**12] * 3)


def test_identical_strategies_are_not_called_different():
    rows = [cell(s, seed, [(100, 1.0, 1.0 + seed)]) for seed in range(5) for s in ("x", "y")]
    pairs = stats.pairwise(stats.paired_scores(rows).table)
    assert pairs.loc[0, "p"] == 1.0 and not pairs.loc[0, "significant"]
    assert stats.win_rates(stats.paired_scores(rows).table)["rate"].loc["x", "y"] == 0.5


def test_failures_are_counted_never_dropped_silently(tmp_path):
    rows = [cell("a", s, [(100, 1.0, 5.0 + s)]) for s in range(3)]
    rows += [
        cell("b", 0, [(40, 0.4, 3.0)], stop="stopped: the objective became NaN after 40 forward passes"),
        cell("b", 1, [(100, 1.0, 4.0)]),
    ]
    failed = [{**cell("b", 2, []), "status": "failed", "error": "boom"}]
    comparison = compare(rows, failed)
    budget = {r["strategy"]: r for r in comparison.fixed_budget}
    assert (budget["b"]["runs"], budget["b"]["stopped_early"], budget["b"]["failed"]) == (2, 1, 1)
    assert "1x stopped: the objective became NaN" == budget["b"]["early_reasons"]
    assert comparison.paired.dropped == 1  # block (m, x, seed 2) has no score for b
    text = " ".join(comparison.conclusions())
    assert "1 left out" in text and "b 1" in text and "failed without a result" in text
    write_comparison(comparison, tmp_path)
    md = (tmp_path / "comparison.md").read_text()
    assert "| b | 2 | 1 | 1 |" in md
    assert {"ecdf.png", "fixed_budget.png", "critical_difference.png", "win_rate.png"} <= {
        p.name for p in tmp_path.iterdir()
    }


def test_problems_with_no_positive_best_are_named_not_scored():
    rows = [cell("a", 0, [(10, 1.0, -3.0)], target="channel:neg:0"), cell("a", 0, [(10, 1.0, 2.0)])]
    runs = anytime.collect_runs(rows)
    assert len(runs.runs) == 1 and runs.unscored == ["m channel:neg:0: best value -3 is not positive"]


def test_a_comparison_too_small_for_any_significance_says_so():
    """4 blocks: the smallest exact two-sided Wilcoxon p is 2/16 = 0.125, above 0.05/3 for 3 pairs."""
    rows = [cell(s, seed, [(100, 1.0, v + seed)]) for seed in range(4) for s, v in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    text = " ".join(compare(rows).conclusions())
    assert "With 4 blocks no pair can be significant" in text and "2/2^4 = 0.12" in text
    many = [
        cell(s, seed, [(100, 1.0, v + seed)]) for seed in range(12) for s, v in (("a", 3.0), ("b", 2.0), ("c", 1.0))
    ]
    assert "no pair can be significant" not in " ".join(compare(many).conclusions())


def test_a_comparison_too_small_for_any_significance_says_how_many_blocks_would_suffice():
    """6 blocks and 3 pairs: 2/2^6 = 0.031 > 0.05/3; with 7 blocks 2/2^7 = 0.0156 passes Holm's first step,
    and 7 blocks all one way do make the pairs significant."""
    rows = [cell(s, seed, [(100, 1.0, v + seed)]) for seed in range(6) for s, v in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    text = " ".join(compare(rows).conclusions())
    assert "With 6 blocks no pair can be significant" in text and "7 blocks would be needed" in text
    seven = [
        cell(s, seed, [(100, 1.0, v + seed)]) for seed in range(7) for s, v in (("a", 3.0), ("b", 2.0), ("c", 1.0))
    ]
    assert compare(seven).pairs["significant"].all()
    assert stats.holm_power(6, 3)[2] == 7 and stats.holm_power(6, 1)[2] == 6 and stats.holm_power(5, 10)[2] == 9


def test_a_cell_whose_slowest_step_is_far_above_its_median_is_flagged_and_named():
    """The rule: slowest step > 10x the median step and > 0.5 s. A first step of 2 s among 0.15 s
    ones (a first call paid inside the clock) is flagged; 0.4 s among 0.01 s ones, or 1 s among 0.5 s
    ones, is not."""
    steady = [(i + 1, 0.15 * (i + 1), 1.0) for i in range(10)]
    stalled = [(1, 2.0, 1.0)] + [(i + 1, 2.0 + 0.15 * i, 1.0) for i in range(1, 10)]
    short = [(1, 0.4, 1.0)] + [(i + 1, 0.4 + 0.01 * i, 1.0) for i in range(1, 10)]
    rows = [cell("a", 0, steady), cell("b", 0, stalled), cell("c", 0, short), cell("d", 0, [(1, 1.0, 1), (2, 1.5, 1)])]
    for r in rows:
        r.pop("max_step_seconds")  # as an atlas cell or a hand-made row: derived from the trace
    lines = [line for line in compare(rows).conclusions() if "slowest step" in line]
    assert len(lines) == 1 and ": 1: m channel:x:1 b fft seed 0 (slowest step 2 s, median 0.15 s)" in lines[0]


def test_legends_name_the_point_each_strategy_returned_when_the_cells_record_it():
    recorded = [cell("cmaes", 0, [(10, 1.0, 5)]), cell("ng:NGOpt", 0, [(10, 1.0, 4)], stop="nan")]
    recorded[0]["extra"] = {"result": "last"}
    recorded[1]["extra"] = {"result": "recommend"}
    runs = anytime.collect_runs(recorded)
    assert anytime.legend_label(runs, "cmaes") == "cmaes (result last)"
    assert anytime.legend_label(runs, "ng:NGOpt") == "ng:NGOpt (result recommend, 1/1 stopped early)"
    # a database from before `result` was recorded keeps its legends as they were
    assert anytime.legend_label(anytime.collect_runs([cell("cmaes", 0, [(10, 1.0, 5)])]), "cmaes") == "cmaes"
