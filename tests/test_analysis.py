"""The analysis behind the studies' numbers, on hand-made cells whose answers are computed by hand."""

import math
import warnings

import numpy as np
import pytest

from fvopt.bench.analysis import at_equal_passes, markdown, mean_by, normalized_scores
from fvopt.bench.metrics import cell_metrics, summarize
from fvopt.bench.metrics import time_area as area_under
from fvopt.bench.rows import best_at, passes_of


def cell(strategy, seed, trace, robust, model="m", target="channel:x:1", seconds=4.0, **extra):
    """A stored row as the store returns it: trace rows (time_s, forwards, backwards, best); a
    budget of `seconds` (None: a budget without seconds)."""
    rows = [
        {"step": i + 1, "time_s": t, "forwards": f, "backwards": b, "value": best, "best": best}
        for i, (t, f, b, best) in enumerate(trace)
    ]
    last = rows[-1] if rows else {"forwards": 0, "backwards": 0}
    return {
        "model": model,
        "target": target,
        "strategy": strategy,
        "param": "fft",
        "param_used": "fft",
        "seed": seed,
        "budget": {"seconds": seconds} if seconds else {"passes": 100},
        "seconds": rows[-1]["time_s"] if rows else 0.0,
        "max_step_seconds": 1.0,
        "forwards": last["forwards"],
        "backwards": last["backwards"],
        "stop_reason": "seconds",
        "trace": rows,
        "final": {
            "value": robust,
            "robust_value": robust,
            "best_seen": max((r["best"] for r in rows), default=None),
            **extra,
        },
    }


A = cell("adam", 0, [(1.0, 1, 1, 5.0), (2.0, 2, 2, 10.0)], robust=9.0)
B = cell("cmaes", 0, [(1.0, 20, 0, 2.0), (3.0, 40, 0, 4.0)], robust=3.0)


def test_passes_count_a_backward_as_two_forwards():
    assert passes_of({"forwards": 7, "backwards": 3}) == 13


def test_best_at_is_a_step_function_of_time_and_of_passes():
    trace = A["trace"]
    assert np.isnan(best_at(trace, np.array([0.5]), "time")[0])
    assert list(best_at(trace, np.array([1.0, 1.5, 2.0, 9.0]), "time")) == [5.0, 5.0, 10.0, 10.0]
    by_passes = best_at(trace, np.array([2, 3, 6]), "passes")  # the steps end at 3 and 6 passes
    assert np.isnan(by_passes[0]) and list(by_passes[1:]) == [5.0, 10.0]


def test_time_to_90_percent_and_area_under_the_curve_by_hand():
    metrics = {m["strategy"]: m for m in cell_metrics([A, B])}
    # reference = best of any cell of the problem = 10; adam reaches 9 = 0.9 * 10 at t = 2
    assert metrics["adam"]["time_to_90"] == 2.0 and metrics["cmaes"]["time_to_90"] is None
    # area under best/ref over the 4 s budget: 0 on [0,1), 0.5 on [1,2), 1 on [2,4] -> 2.5 / 4
    assert metrics["adam"]["auc"] == pytest.approx(0.625, rel=1e-12)
    # cmaes: 0.2 on [1,3), 0.4 on [3,4] -> (0.4 + 0.4) / 4 = 0.2
    assert metrics["cmaes"]["auc"] == pytest.approx(0.2, rel=1e-12)
    assert metrics["cmaes"]["passes"] == 40 and metrics["adam"]["passes"] == 6


def test_scores_are_normalized_within_each_model_and_target():
    other_model = cell("adam", 0, [(1.0, 1, 1, 100.0)], robust=50.0, model="m2")
    scores = {(r["model"], r["strategy"]): r["score"] for r in normalized_scores([A, B, other_model])}
    assert scores[("m", "adam")] == 1.0 and scores[("m", "cmaes")] == pytest.approx(3.0 / 9.0)
    assert scores[("m2", "adam")] == 1.0  # a bigger scale on another model does not shrink model m's scores


def test_at_equal_passes_compares_at_the_passes_every_cell_reached():
    out = {r["strategy"]: r for r in at_equal_passes([A, B])}
    assert out["adam"]["passes_common"] == out["cmaes"]["passes_common"] == 6
    # at 6 passes adam had 10, cmaes had not finished a step (20 forwards) -> NaN
    assert out["adam"]["value_at_passes"] == 10.0 and math.isnan(out["cmaes"]["value_at_passes"])


def test_mean_by_gives_mean_and_standard_error_best_first():
    rows = [{"strategy": "a", "score": v} for v in (1.0, 3.0)] + [{"strategy": "b", "score": 5.0}]
    out = mean_by(rows, ("strategy",))
    assert [r["strategy"] for r in out] == ["b", "a"]
    assert out[1]["mean"] == 2.0 and out[1]["sem"] == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
    assert out[0]["sem"] == 0.0 and out[0]["n"] == 1


def test_summary_takes_medians_over_seeds():
    seeds = [cell("adam", s, [(1.0, 1, 1, v)], robust=v) for s, v in enumerate((1.0, 2.0, 9.0))]
    (row,) = summarize(cell_metrics(seeds))
    assert row["seeds"] == 3 and row["robust_value"] == 2.0


def test_area_under_the_curve_is_exact_capped_and_clipped_at_the_horizon():
    trace = [{"time_s": 0.5, "best": 2.0}, {"time_s": 1.5, "best": 1.0}, {"time_s": 3.0, "best": 8.0}]
    # best so far: 0 on [0,0.5), 2 on [0.5,3), 8 on [3,4] -> shares 0, 0.5, 1 (8/4 capped at 1)
    assert area_under(trace, 4.0, 4.0) == pytest.approx((0.5 * 2.5 + 1.0 * 1.0) / 4.0, rel=1e-12)
    # a horizon before the last step: only [0, 2] counts
    assert area_under(trace, 4.0, 2.0) == pytest.approx(0.5 * 1.5 / 2.0, rel=1e-12)
    assert area_under([], 4.0, 4.0) is None and area_under(trace, 0.0, 4.0) is None


def test_a_budget_without_seconds_measures_the_area_over_the_cell_s_own_time():
    passes_only = cell("adam", 0, [(1.0, 1, 1, 5.0), (2.0, 2, 2, 10.0)], robust=9.0, seconds=None)
    (m,) = cell_metrics([passes_only])
    assert m["auc"] == pytest.approx(0.5 * 1.0 / 2.0, rel=1e-12)  # 0 on [0,1), 0.5 on [1,2)
    assert m["time_to_90"] == 2.0 and m["budget_flag"] == ""


def test_the_reference_of_time_to_90_percent_is_per_model_and_ignores_non_finite_bests():
    small = cell("adam", 0, [(1.0, 1, 1, 1.0)], robust=1.0, model="m1")
    large = cell("adam", 0, [(1.0, 1, 1, 100.0)], robust=1.0, model="m2")
    broken = cell("sgd", 0, [(1.0, 1, 1, 0.5)], robust=1.0, model="m1")
    broken["final"]["best_seen"] = float("nan")
    metrics = {(m["model"], m["strategy"]): m for m in cell_metrics([small, large, broken])}
    assert metrics[("m1", "adam")]["time_to_90"] == 1.0  # against m1's best (1.0), not m2's 100
    assert metrics[("m1", "sgd")]["time_to_90"] is None and metrics[("m1", "sgd")]["auc"] == pytest.approx(0.375)


def test_a_missing_or_non_finite_value_neither_scores_nor_sets_the_scale_in_any_order():
    good = cell("adam", 0, [(1.0, 1, 1, 4.0)], robust=4.0)
    half = cell("sgd", 0, [(1.0, 1, 1, 2.0)], robust=2.0)
    nan = cell("ga", 0, [(1.0, 1, 0, 1.0)], robust=float("nan"))
    inf = cell("pso", 0, [(1.0, 1, 0, 1.0)], robust=float("inf"))
    none = cell("es", 0, [(1.0, 1, 0, 1.0)], robust=None)
    for order in ([good, half, nan, inf, none], [nan, inf, none, half, good]):
        scores = {r["strategy"]: r["score"] for r in normalized_scores(order)}
        assert scores["adam"] == 1.0 and scores["sgd"] == 0.5
        assert all(math.isnan(scores[s]) for s in ("ga", "pso", "es"))


def test_a_problem_whose_best_value_is_not_positive_has_no_scores():
    rows = [cell("adam", 0, [(1.0, 1, 1, -1.0)], robust=-1.0), cell("sgd", 0, [(1.0, 1, 1, -2.0)], robust=-2.0)]
    assert all(math.isnan(r["score"]) for r in normalized_scores(rows))


def test_at_equal_passes_without_any_value_is_nan_and_quiet():
    late = cell("cmaes", 0, [(1.0, 40, 0, 3.0)], robust=3.0)
    early = cell("adam", 0, [(1.0, 1, 1, 5.0)], robust=5.0)
    early["forwards"] = early["backwards"] = 0  # a cell whose passes are counted as zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" RuntimeWarning
        out = at_equal_passes([late, early])
    assert all(r["passes_common"] == 0 and math.isnan(r["score"]) for r in out)


def test_mean_by_leaves_out_missing_values_and_counts_what_it_used():
    rows = [{"strategy": "a", "score": v} for v in (1.0, float("nan"), 3.0)] + [{"strategy": "a", "score": None}]
    (row,) = mean_by(rows, ("strategy",))
    assert (row["mean"], row["n"]) == (2.0, 2)
    # a value read from the cell's final scores when the row itself does not carry it
    (row,) = mean_by(
        [cell("adam", 0, [(1.0, 1, 1, 1.0)], robust=1.0, transfer_prob=0.25)], ("strategy",), "transfer_prob"
    )
    assert (row["mean"], row["n"]) == (0.25, 1)


def test_markdown_tables_round_floats_and_mark_missing_values():
    text = markdown(
        [{"strategy": "adam", "mean": 0.12345, "n": 3}, {"strategy": "ga", "mean": None, "n": 0}],
        ["strategy", "mean", "n"],
        digits=2,
    )
    assert text.splitlines() == ["| strategy | mean | n |", "|---|---|---|", "| adam | 0.12 | 3 |", "| ga | - | 0 |"]


def test_summary_never_takes_medians_across_models():
    rows = [
        cell("adam", s, [(1.0, 1, 1, v)], robust=v, model=m)
        for m, values in (("m1", (1.0, 3.0)), ("m2", (100.0, 300.0)))
        for s, v in enumerate(values)
    ]
    summary = {r["model"]: r for r in summarize(cell_metrics(rows))}
    assert summary["m1"]["robust_value"] == 2.0 and summary["m2"]["robust_value"] == 200.0
    assert summary["m1"]["seeds"] == summary["m2"]["seeds"] == 2


def test_the_cells_table_keeps_the_step_time_distribution_and_flags_a_slow_step():
    """Stored median and slowest step (and the untimed warm-up) reach the cells table; the flag needs
    both > 10x the median and > 0.5 s; older rows without a median get it from their trace."""
    slow = cell("cmaes", 0, [(3.0, 24, 0, 1.0), (3.2, 48, 0, 2.0), (3.4, 72, 0, 3.0)], robust=1.0)
    slow.update(max_step_seconds=3.0, median_step_seconds=0.2, warmup_seconds=0.0)
    warm = dict(slow, strategy="adam", max_step_seconds=0.21, median_step_seconds=0.2, warmup_seconds=1.5)
    old = cell("ga", 0, [(3.0, 24, 0, 1.0), (3.2, 48, 0, 2.0), (3.4, 72, 0, 3.0)], robust=1.0)
    old["max_step_seconds"] = None
    metrics = {m["strategy"]: m for m in cell_metrics([slow, warm, old])}
    assert metrics["cmaes"]["step_flag"] == "SLOW STEP" and metrics["adam"]["step_flag"] == ""
    assert metrics["adam"]["warmup_seconds"] == 1.5 and metrics["cmaes"]["max_step_seconds"] == 3.0
    assert metrics["ga"]["median_step_seconds"] == pytest.approx(0.2) and metrics["ga"]["max_step_seconds"] == 3.0
    assert metrics["ga"]["step_flag"] == "SLOW STEP"
    (summary,) = summarize([metrics["cmaes"]])
    assert summary["slow_steps"] == 1 and summary["max_step_seconds"] == 3.0
