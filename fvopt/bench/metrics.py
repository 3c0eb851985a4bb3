"""Per-cell numbers of a report and their medians over seeds: the cells and summary tables.

Each cell is measured against its problem's reference value (`rows.reference_values`: the best
any cell of the same model and target reached): how long it took to reach 90% of it, and the
area under its best-versus-time curve.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

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
SUMMARY_COLUMNS = ["model", "target", "strategy", "param", "param_used", "seeds", *MEDIAN_KEYS, "overran"]


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
        }
        for key in MEDIAN_KEYS:
            values = [m[key] for m in members if m[key] is not None]
            row[key] = float(np.median(values)) if values else None
        out.append(row)
    return sorted(out, key=lambda r: (str(r["model"]), r["target"], -(r["robust_value"] or -math.inf)))
