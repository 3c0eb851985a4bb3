"""Small statistics the measures share: bootstrap intervals and example selection spread over sources.

Intervals are percentile bootstraps with a fixed seed (reproducible): each measure passes a
function of resampled index sets (reference images, pairs' images, or the batch's images), so the
interval covers the uncertainty that comes from *which* natural images (and seeds) were used.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

BOOTSTRAP = 1000
LEVEL = 0.95


def percentile_ci(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) percentile interval of bootstrap replicates (NaN-aware); (nan, nan) when none are finite."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(r, tail)), float(np.percentile(r, 100 - tail))


def bootstrap(statistic: Callable[..., float], sizes: Sequence[int], seed: int = 0, reps: int = BOOTSTRAP) -> np.ndarray:
    """Replicates of statistic(idx_1, ..., idx_k), each idx_j resampled with replacement from range(sizes[j])."""
    rng = np.random.default_rng(seed)
    out = np.empty(reps)
    for b in range(reps):
        out[b] = statistic(*[rng.integers(0, n, n) for n in sizes])
    return out


def spread_select(values: np.ndarray, sources: Sequence[str], k: int, per_source: int, largest: bool = True) -> list[int]:
    """Indices of the k largest (or smallest) finite values, at most `per_source` from any one source.

    Why: a narrow reference set puts a unit's whole top list in one or two photos, and a measure
    built on it then tells which photo a picture resembles, not what the unit responds to.
    """
    v = np.asarray(values, dtype=float)
    order = np.argsort(-v if largest else v, kind="stable")
    taken: dict[str, int] = {}
    out: list[int] = []
    for i in order:
        if not np.isfinite(v[i]):
            continue
        s = sources[i]
        if taken.get(s, 0) >= per_source:
            continue
        taken[s] = taken.get(s, 0) + 1
        out.append(int(i))
        if len(out) == k:
            break
    return out
