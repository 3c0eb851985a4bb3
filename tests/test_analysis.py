"""The analysis behind the studies' numbers, on hand-made cells whose answers are computed by hand."""
import math

import numpy as np
import pytest

from fvopt.bench.analysis import at_equal_passes, mean_by, normalized_scores
from fvopt.bench.report import best_at, cell_metrics, passes_of, summarize


def cell(strategy, seed, trace, robust, model="m", target="channel:x:1", seconds=4.0, **extra):
    """A stored row as the store returns it: trace rows (time_s, forwards, backwards, best)."""
    rows = [{"step": i + 1, "time_s": t, "forwards": f, "backwards": b, "value": best, "best": best}
            for i, (t, f, b, best) in enumerate(trace)]
    last = rows[-1] if rows else {"forwards": 0, "backwards": 0}
    return {"model": model, "target": target, "strategy": strategy, "param": "fft", "param_used": "fft", "seed": seed,
            "budget": {"seconds": seconds}, "seconds": rows[-1]["time_s"] if rows else 0.0, "max_step_seconds": 1.0,
            "forwards": last["forwards"], "backwards": last["backwards"], "stop_reason": "seconds", "trace": rows,
            "final": {"value": robust, "robust_value": robust, "best_seen": max((r["best"] for r in rows), default=None),
                      **extra}}


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
    assert metrics["adam"]["auc"] == pytest.approx(0.625, abs=0.01)
    # cmaes: 0.2 on [1,3), 0.4 on [3,4] -> (0.4 + 0.4) / 4 = 0.2
    assert metrics["cmaes"]["auc"] == pytest.approx(0.2, abs=0.01)
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
