"""The bottom layer of the bench reports: what a stored cell row means, written once.

A row is one cell as `Store.rows` returns it (its `trace` a list of points with `time_s`,
`forwards`, `backwards`, `value`, `best`). Everything above (tables, plots, statistics,
comparison, report) reads rows through these definitions:

- a **problem** is (model, target): values of two models, or two targets, never compare;
- **passes** count a forward as one and a backward as two, as the budget does;
- the **best so far** of a trace ignores non-finite points (a NaN step never lowers it);
- the **reference value** of a problem is the best value any of its cells reached: the largest
  finite best-so-far of any trace point or final `best_seen` (they agree: `best_seen` is the last
  trace point's best). Scores, curves and exports are divided by it (Wang & Ponce's "best
  activation ever reached for that unit"). One second definition is kept, by name, because the
  paired statistics need it: `measure_references`, the largest final value of one measure (the
  robust value, scored by the fixed evaluator, which no trace holds).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import numpy as np

from ..io.filenames import slug  # noqa: F401  (the one file-name sanitizer; read from here by the report)
from ..stops import used_budget

AXES = {"passes": "model passes (forward 1, backward 2)", "seconds": "wall time (s)"}


def finite(value) -> float | None:
    """`value` as a float when it is a finite number, else None (missing, NaN, inf, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def passes_of(entry: dict) -> int:
    """Model passes of a cell or trace entry: a forward counts one, a backward two (as the budget does)."""
    return entry["forwards"] + 2 * entry["backwards"]


def problem_of(row: dict) -> tuple:
    """What a value is compared and normalized within: the same target of the same model."""
    return row.get("model"), row["target"]


def problems(rows: list[dict]) -> list[tuple[str | None, str]]:
    """The (model, target) pairs of `rows`: one panel, one image grid, one normalization each."""
    return sorted({problem_of(r) for r in rows}, key=lambda p: (str(p[0]), p[1]))


def problem_title(model: str | None, target: str, rows: list[dict]) -> str:
    """How a problem is named in a caption: its target, with the model when `rows` hold several."""
    return target if len({r.get("model") for r in rows}) == 1 else f"{model}: {target}"


def cell_name(row: dict) -> str:
    """A cell as a report names it: model, target, strategy, parameterization and seed."""
    return f"{row.get('model')} {row['target']} {row['strategy']} {row['param']} seed {row['seed']}"


def stopped_early(row: dict) -> bool:
    """A finished cell whose run ended before its budget (a NaN objective, an interrupt)."""
    return not used_budget(row.get("stop_reason"))


def algorithm_labels(rows: list[dict]) -> dict[int, str]:
    """The name each row is compared under: the strategy, with the parameterization when the
    comparison has more than one, and what it searched where that differs (cmaes [fft as fft:k=8]);
    keyed by position in `rows`."""
    several = len({r["param"] for r in rows}) > 1

    def param(r: dict) -> str:
        used = r.get("param_used")
        return r["param"] if not used or used == r["param"] else f"{r['param']} as {used}"

    return {i: f"{r['strategy']} [{param(r)}]" if several else r["strategy"] for i, r in enumerate(rows)}


def running_best(values: Iterable) -> list[float | None]:
    """Best value so far at each point (numbers, or trace points: their `best`); None until the
    first finite one (a NaN step never lowers it or hides an earlier best)."""
    out, best = [], None
    for value in values:
        value = finite(value.get("best") if isinstance(value, dict) else value)
        if value is not None and (best is None or value > best):
            best = value
        out.append(best)
    return out


def best_so_far(trace: list[dict]) -> np.ndarray:
    """`running_best` of a trace's `best` values as an array, NaN before the first finite one."""
    return np.array([np.nan if b is None else b for b in running_best(trace)], dtype=float)


def trace_axis(trace: list[dict], axis: str) -> np.ndarray:
    """The x of each trace point: "passes" (model passes) or "seconds"/"time" (wall time)."""
    if axis == "passes":
        return np.array([passes_of(p) for p in trace], dtype=float)
    return np.array([p["time_s"] for p in trace], dtype=float)


def step_at(points: np.ndarray, values: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """A step function (value i holds from points[i] on) read at each x: NaN before the first
    point, the last value after the last."""
    if not len(points):
        return np.full(len(xs), np.nan)
    idx = np.searchsorted(points, xs, side="right") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan)


def best_at(trace: list[dict], xs: np.ndarray, axis: str) -> np.ndarray:
    """The best value a trace had reached by each x (wall time or passes); NaN before the first step."""
    return step_at(trace_axis(trace, axis), best_so_far(trace), xs)


def area_under(points: np.ndarray, shares: np.ndarray, horizon: float) -> float:
    """Mean over [0, horizon] of a step function (shares[i] from points[i] on, 0 before the first
    point), integrated exactly; points beyond the horizon count up to it. 0 for an empty curve or
    horizon. The callers choose the shares: a best-so-far divided by its reference value, capped."""
    if not len(points) or horizon <= 0:
        return 0.0
    edges = [min(float(p), horizon) for p in points] + [horizon]
    return float(sum(s * (b - a) for s, a, b in zip(shares, edges[:-1], edges[1:])) / horizon)


def reference_values(rows: list[dict]) -> dict[tuple, float]:
    """The reference value of each problem: the best value any of its cells reached (the largest
    finite trace best or final `best_seen`). A problem none of whose cells has a finite value is
    absent."""
    ref: dict[tuple, float] = {}
    for r in rows:
        values = [finite(p.get("best")) for p in r.get("trace") or []]
        values.append(finite((r.get("final") or {}).get("best_seen")))
        values = [v for v in values if v is not None]
        if values:
            key = problem_of(r)
            ref[key] = max(values + ([ref[key]] if key in ref else []))
    return ref


def measure_references(rows: list[dict], measure: str) -> dict[tuple, float]:
    """The second, named definition: the largest finite final `measure` (e.g. "robust_value") of
    any cell of each problem, for scores of a measure no trace records."""
    top: dict[tuple, float] = defaultdict(lambda: -math.inf)
    for r in rows:
        value = finite((r.get("final") or {}).get(measure))
        if value is not None:
            top[problem_of(r)] = max(top[problem_of(r)], value)
    return dict(top)
