"""Per-cell numbers of a report and their medians over seeds: the cells and summary tables.

Each cell is measured against its problem's reference value (`rows.reference_values`: the best
any cell of the same model and target reached): how long it took to reach 90% of it, and the
area under its best-versus-time curve. Its step times are kept (median, slowest, and the untimed
warm-up before its clock) and a slowest step far above the median is flagged (`slow_step`).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..run import step_seconds as run_step_seconds
from .rows import area_under, best_so_far, passes_of, problem_of, reference_values, trace_axis

CELL_COLUMNS = [
    "model",
    "target",
    "strategy",
    "param",
    "param_used",
    "seed",
    "value",
    "robust_value",
    "best_seen",
    "time_to_90",
    "auc",
    "high_freq_share",
    "total_variation",
    "transfer_prob",
    "seconds",
    "forwards",
    "backwards",
    "passes",
    "budget_flag",
    "median_step_seconds",
    "max_step_seconds",
    "warmup_seconds",
    "step_flag",
    "stop_reason",
]
MEDIAN_KEYS = (  # summarized as the median over seeds
    "value",
    "robust_value",
    "best_seen",
    "time_to_90",
    "auc",
    "high_freq_share",
    "total_variation",
    "transfer_prob",
    "seconds",
    "passes",
)
SUMMARY_COLUMNS = [
    "model",
    "target",
    "strategy",
    "param",
    "param_used",
    "seeds",
    *MEDIAN_KEYS,
    "overran",
    "max_step_seconds",
    "slow_steps",
]

# A cell's slowest step is flagged "SLOW STEP" when it took more than SLOW_STEP_RATIO times the cell's
# median step and more than SLOW_STEP_SECONDS: a stall (another process, swapping, a first call paid
# inside the clock) that took budget from that cell only. Both, because a 10 ms run's 0.2 s step and a
# 2x slower step are not what bias an equal-time comparison.
SLOW_STEP_RATIO = 10.0
SLOW_STEP_SECONDS = 0.5


def step_seconds(row: dict) -> tuple[float | None, float | None]:
    """(median, max) seconds of a cell's steps: the stored columns, or (databases and atlas sites written
    before they were stored) the gaps between its trace's times; None where neither says."""
    median, most = row.get("median_step_seconds"), row.get("max_step_seconds")
    if median is None or most is None:  # older databases: from the gaps between the trace's times
        times = [t["time_s"] for t in row.get("trace") or [] if isinstance(t, dict) and t.get("time_s") is not None]
        from_trace = run_step_seconds(times) or (None, None)
        median = from_trace[0] if median is None else median
        most = from_trace[1] if most is None else most
    return median, most


def slow_step(median: float | None, most: float | None) -> bool:
    """Whether the slowest step is far above the median: > SLOW_STEP_RATIO x median and > SLOW_STEP_SECONDS."""
    return median is not None and most is not None and most > SLOW_STEP_SECONDS and most > SLOW_STEP_RATIO * median


def time_area(trace: list[dict], reference: float, horizon: float) -> float | None:
    """Mean over [0, horizon] of the best-so-far curve against wall time divided by `reference`
    (capped at 1; 0 before the first step); None without a trace, a horizon or a positive reference."""
    if not trace or horizon <= 0 or not reference > 0:
        return None
    return area_under(trace_axis(trace, "seconds"), np.minimum(best_so_far(trace) / reference, 1.0), horizon)


def cell_metrics(rows: list[dict]) -> list[dict]:
    """One flat record per cell, with time to 90% of its problem's reference value and the area
    under its best-versus-time curve (normalized by that value and by the time budget, or by the
    cell's own duration when the budget has no seconds)."""
    reference = reference_values(rows)
    out = []
    for r in rows:
        trace, ref = r["trace"] or [], reference.get(problem_of(r), -math.inf)
        horizon = r["budget"].get("seconds") or (trace[-1]["time_s"] if trace else 0)
        t90 = auc = None
        if ref > 0 and trace:
            t90 = next((row["time_s"] for row in trace if row["best"] >= 0.9 * ref), None)
            auc = time_area(trace, ref, horizon)
        overran = bool(
            r["budget"].get("seconds") and r["seconds"] > r["budget"]["seconds"] + (r["max_step_seconds"] or 0)
        )
        median, most = step_seconds(r)
        f = r["final"]
        out.append(
            {
                "model": r.get("model"),
                "target": r["target"],
                "strategy": r["strategy"],
                "param": r["param"],
                "param_used": r["param_used"],
                "seed": r["seed"],
                "value": f["value"],
                "robust_value": f["robust_value"],
                "best_seen": f.get("best_seen"),
                "time_to_90": t90,
                "auc": auc,
                "high_freq_share": f.get("high_freq_share"),
                "total_variation": f.get("total_variation"),
                "transfer_prob": f.get("transfer_prob"),
                "seconds": r["seconds"],
                "forwards": r["forwards"],
                "backwards": r["backwards"],
                "passes": passes_of(r),
                "budget_flag": "OVERRAN" if overran else "",
                "median_step_seconds": median,
                "max_step_seconds": most,
                "warmup_seconds": r.get("warmup_seconds"),
                "step_flag": "SLOW STEP" if slow_step(median, most) else "",
                "stop_reason": r["stop_reason"],
            }
        )
    return out


def summarize(cells: list[dict]) -> list[dict]:
    """Medians over seeds per (model, target, strategy, parameterization): never across models."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c.get("model"), c["target"], c["strategy"], c["param"], c["param_used"])].append(c)
    out = []
    for (model, target, strategy, param, used), members in groups.items():
        row = {
            "model": model,
            "target": target,
            "strategy": strategy,
            "param": param,
            "param_used": used,
            "seeds": len(members),
            "overran": sum(1 for m in members if m["budget_flag"]),
            "max_step_seconds": max(
                (m["max_step_seconds"] for m in members if m.get("max_step_seconds") is not None), default=None
            ),
            "slow_steps": sum(1 for m in members if m.get("step_flag")),
        }
        for key in MEDIAN_KEYS:
            values = [m[key] for m in members if m[key] is not None]
            row[key] = float(np.median(values)) if values else None
        out.append(row)
    return sorted(out, key=lambda r: (str(r["model"]), r["target"], -(r["robust_value"] or -math.inf)))
