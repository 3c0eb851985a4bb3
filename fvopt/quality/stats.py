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


def bootstrap(
    statistic: Callable[..., np.ndarray], sizes: Sequence[int], seed: int = 0, reps: int = BOOTSTRAP
) -> np.ndarray:
    """Replicates of a vectorized statistic(idx_1, ..., idx_k): each idx_j is a (chunk, sizes[j]) array of
    indices resampled with replacement from range(sizes[j]), and the statistic returns (chunk,) values.
    Chunks keep memory near 10^7 indices whatever the reference size."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(reps, 10_000_000 // max(1, max(sizes))))
    out = []
    for start in range(0, reps, chunk):
        m = min(chunk, reps - start)
        out.append(np.asarray(statistic(*[rng.integers(0, n, (m, n)) for n in sizes]), dtype=float))
    return np.concatenate(out)


def spread_select(
    values: np.ndarray,
    sources: Sequence[str],
    k: int,
    per_source: int,
    largest: bool = True,
    same: Sequence | None = None,
    exclude: Sequence[int] = (),
) -> list[int]:
    """Indices of the k largest (or smallest) finite values, at most `per_source` from any one source,
    at most one of the items that share a `same` key (near-copies, like a crop and its mirror), and
    none of `exclude` or its near-copies (a unit's bottom list never repeats its top list).

    Why: a narrow reference set puts a unit's whole top list in one or two photos, and a measure
    built on it then tells which photo a picture resembles, not what the unit responds to.
    """
    v = np.asarray(values, dtype=float)
    order = np.argsort(-v if largest else v, kind="stable")
    taken: dict[str, int] = {}
    seen: set = set() if same is None else {same[int(i)] for i in exclude}
    banned = set(int(i) for i in exclude)
    out: list[int] = []
    for i in order:
        if not np.isfinite(v[i]) or int(i) in banned:
            continue
        s = sources[i]
        if taken.get(s, 0) >= per_source or (same is not None and same[i] in seen):
            continue
        if same is not None:  # a crop and its mirror image count once
            seen.add(same[i])
        taken[s] = taken.get(s, 0) + 1
        out.append(int(i))
        if len(out) == k:
            break
    return out
