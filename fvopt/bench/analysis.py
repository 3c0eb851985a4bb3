"""Comparisons across cells: scores normalized per target, at equal time and at equal model passes.

Wang & Ponce (2022) normalize each unit's scores by the best activation ever reached for that
unit; the same normalization here makes targets of very different scales comparable.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .rows import best_at, finite, measure_references, passes_of, problem_of
from .tables import markdown_table


def normalized_scores(rows: list[dict], key: str = "robust_value") -> list[dict]:
    """Each cell's final `key` divided by the largest value of any cell of the same (model, target)
    (`rows.measure_references`).

    A missing or non-finite value scores NaN and does not set the scale; so does every cell of a
    problem whose largest value is not positive (a ratio to it would rank backwards)."""
    top = measure_references(rows, key)
    out = []
    for r in rows:
        value, scale = finite(r["final"].get(key)), top.get(problem_of(r), -np.inf)
        out.append({**r, "score": value / scale if value is not None and scale > 0 else np.nan})
    return out


def at_equal_passes(rows: list[dict]) -> list[dict]:
    """Best value each cell had reached at the pass count that every cell of its problem (model,
    target) reached, normalized per problem: who uses model passes best. A cell that had not
    finished a step by then has no value (NaN): `mean_by` leaves it out, and its `n` shows that."""
    by_target: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by_target[problem_of(r)].append(r)
    out = []
    for target, members in by_target.items():
        common = min(passes_of(r) for r in members)
        values = [float(best_at(r["trace"] or [], np.array([common]), "passes")[0]) for r in members]
        finite = [v for v in values if np.isfinite(v)]
        top = max(finite) if finite else np.nan
        for r, v in zip(members, values):
            out.append({**r, "passes_common": common, "value_at_passes": v, "score": v / top if top > 0 else np.nan})
    return out


def mean_by(rows: list[dict], keys: tuple[str, ...], value: str = "score") -> list[dict]:
    """Mean and standard error of `value` over all rows sharing `keys`, best first."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        v = r[value] if value in r else r["final"].get(value)
        if v is not None and not np.isnan(v):
            groups[tuple(r[k] for k in keys)].append(float(v))
    out = []
    for k, vs in groups.items():
        arr = np.array(vs)
        out.append(
            {
                **dict(zip(keys, k)),
                "mean": float(arr.mean()),
                "sem": float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else 0.0,
                "n": len(arr),
            }
        )
    return sorted(out, key=lambda r: -r["mean"])


def markdown(rows: list[dict], columns: list[str], digits: int = 3) -> str:
    """A Markdown table with floats to `digits` decimals (the studies' analysis tables)."""
    return markdown_table(rows, columns, number=f".{digits}f", nan="nan")
