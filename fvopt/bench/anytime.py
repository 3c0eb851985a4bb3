"""Fixed-target and fixed-budget views of benchmark runs, as COCO and IOHanalyzer draw them.

Activation maximization has no known optimum, so each run's best-so-far is divided by the best
value any run of the same problem (model, target) reached: 1.0 is the best seen in the
comparison. Targets are fractions of that (0.5 ... 0.99), or COCO-style budget-based targets
(what the best strategy's median run had reached after a given share of the budget).

- Fixed target: the run time (model passes, seconds) a run needs to reach each target; aRT
  (COCO's average running time: every pass of every run, unsuccessful runs counted in full,
  divided by the number of successful runs) with bootstrap percentiles; and the ECDF of run times
  over all (run, target) pairs.
- Fixed budget: normalized best-so-far against passes and seconds (median, interquartile band),
  and the area under it as one anytime number.

Runs that stopped early (a NaN objective, an error) keep the best they reached and are counted
per strategy (`stopped_early`); cells that failed without a result are counted as `failed`.
Neither is averaged in silently or dropped without saying so.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..stops import stop_kind
from .rows import (
    AXES,
    algorithm_labels,
    area_under,
    best_so_far,
    finite,
    problem_of,
    reference_values,
    step_at,
    stopped_early,
    trace_axis,
)  # noqa: F401  (AXES, stopped_early: also read from here by studies)

FRACTIONS = (0.5, 0.8, 0.9, 0.95, 0.99)
BUDGET_SHARES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass
class Run:
    """One cell's trace, normalized: best-so-far / the best value of its problem."""

    label: str
    problem: tuple
    seed: int
    passes: np.ndarray
    seconds: np.ndarray
    best: np.ndarray
    early: bool
    reason: str
    result: str | None = None  # the point the strategy returned (its `result` option), when the cell records it

    @property
    def length(self) -> dict[str, float]:
        return {
            "passes": float(self.passes[-1]) if len(self.passes) else 0.0,
            "seconds": float(self.seconds[-1]) if len(self.seconds) else 0.0,
        }

    def hit(self, target: float, axis: str) -> float | None:
        """The passes or seconds at which the run first reached `target`; None if it never did."""
        idx = np.flatnonzero(self.best >= target)
        return None if not len(idx) else float((self.passes if axis == "passes" else self.seconds)[idx[0]])

    def best_at(self, xs: np.ndarray, axis: str) -> np.ndarray:
        """Normalized best-so-far at each x; NaN before the first step, carried after the last."""
        return step_at(self.passes if axis == "passes" else self.seconds, self.best, xs)


@dataclass
class Runs:
    """All runs of a comparison, and the cells that could not be scored, with the reason."""

    runs: list[Run]
    failed: dict[str, int] = field(default_factory=dict)  # label -> cells stored as failed (no result)
    unscored: list[str] = field(default_factory=list)  # problems left out, and why

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.runs} | set(self.failed))

    def of(self, label: str) -> list[Run]:
        return [r for r in self.runs if r.label == label]


def collect_runs(rows: list[dict], failed: list[dict] | None = None) -> Runs:
    """Normalize every finished cell's trace by its problem's best value. A problem whose best is
    not positive cannot be normalized (a ratio to it would rank backwards): it is left out and
    named in `unscored`."""
    labels = algorithm_labels(rows + (failed or []))
    refs = reference_values(rows)
    runs, unscored = [], set()
    for i, r in enumerate(rows):
        problem = problem_of(r)
        ref = refs.get(problem, -math.inf)
        if not ref > 0:
            unscored.add(f"{problem[0]} {problem[1]}: best value {ref:.4g} is not positive")
            continue
        trace = [p for p in r["trace"] or [] if finite(p["best"]) is not None]
        runs.append(
            Run(
                labels[i],
                problem,
                r["seed"],
                trace_axis(trace, "passes"),
                trace_axis(trace, "seconds"),
                best_so_far(trace) / ref,
                stopped_early(r),
                r.get("stop_reason") or "",
                (r.get("extra") or {}).get("result"),
            )
        )
    counts: dict[str, int] = defaultdict(int)
    for j, r in enumerate(failed or []):
        counts[labels[len(rows) + j]] += 1
    return Runs(runs, dict(counts), sorted(unscored))


def budget_targets(runs: Runs, shares: tuple[float, ...] = BUDGET_SHARES) -> dict[tuple, list[float]]:
    """COCO-style budget-based targets per problem: for each share of the problem's pass budget
    (the shortest run's length), the best median normalized value any strategy had by then."""
    out = {}
    for problem in {r.problem for r in runs.runs}:
        mine = [r for r in runs.runs if r.problem == problem and len(r.passes)]
        budget = min(r.length["passes"] for r in mine)
        targets = set()
        for share in shares:
            x = np.array([share * budget])
            medians = []
            for label in {r.label for r in mine}:
                values = np.array([r.best_at(x, "passes")[0] for r in mine if r.label == label])
                if np.isfinite(values).any():
                    medians.append(float(np.nanmedian(values)))
            if medians:
                targets.add(round(max(medians), 6))
        out[problem] = sorted(targets)
    return out


def targets_of(runs: Runs, kind: str = "fractions") -> dict[tuple, list[float]]:
    """The targets of each problem, in normalized units."""
    if kind == "fractions":
        return {r.problem: list(FRACTIONS) for r in runs.runs}
    if kind == "budget":
        return budget_targets(runs)
    raise ValueError(f"target kind {kind!r}: allowed are 'fractions' and 'budget'")


def average_running_time(runs: list[Run], target: float, axis: str) -> tuple[float, int]:
    """COCO's aRT: the passes (or seconds) spent by all runs until they reached `target`, an
    unsuccessful run counting its whole length, divided by the number of successful runs (inf when
    none succeeded). Returns (aRT, successes)."""
    spent, successes = 0.0, 0
    for run in runs:
        hit = run.hit(target, axis)
        spent += run.length[axis] if hit is None else hit
        successes += hit is not None
    return (spent / successes if successes else math.inf), successes


def bootstrap_art(runs: list[Run], target: float, axis: str, samples: int = 1000, seed: int = 0) -> tuple[float, ...]:
    """10th, 50th and 90th percentiles of aRT over runs resampled with replacement (as cocopp
    reports the dispersion of aRT)."""
    rng = np.random.default_rng(seed)
    hits = [run.hit(target, axis) for run in runs]
    cost = np.array([run.length[axis] if h is None else h for run, h in zip(runs, hits)])
    ok = np.array([h is not None for h in hits])
    picks = rng.integers(0, len(runs), size=(samples, len(runs)))
    wins = ok[picks].sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        arts = np.where(wins > 0, cost[picks].sum(1) / np.maximum(wins, 1), np.inf)
    return tuple(float(v) for v in np.percentile(arts, [10, 50, 90], method="lower"))


def fixed_target_table(runs: Runs, kind: str = "fractions", samples: int = 1000) -> list[dict]:
    """Per strategy and target: aRT in passes and in seconds (with bootstrap percentiles of the
    passes), successful runs, and runs. With fraction targets each row pools every problem at the
    same fraction; budget-based targets differ per problem, so their rows are per problem."""
    targets = targets_of(runs, kind)
    groups: dict[tuple, list[tuple[Run, float]]] = defaultdict(list)
    for run in runs.runs:
        for i, t in enumerate(targets.get(run.problem, [])):
            key = (run.label, t) if kind == "fractions" else (run.label, f"{run.problem[1]} #{i + 1}", t)
            groups[key].append((run, t))
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1:]))):
        rs = [m[0] for m in members]
        t = members[0][1]
        art_p, ok = average_running_time(rs, t, "passes")
        art_s, _ = average_running_time(rs, t, "seconds")
        p10, p50, p90 = bootstrap_art(rs, t, "passes", samples)
        out.append(
            {
                "strategy": key[0],
                "target": t if kind == "fractions" else key[1],
                "target_value": t,
                "aRT_passes": art_p,
                "aRT_passes_p10": p10,
                "aRT_passes_p50": p50,
                "aRT_passes_p90": p90,
                "aRT_seconds": art_s,
                "successes": ok,
                "runs": len(rs),
            }
        )
    return out


def ecdf(runs: Runs, label: str, xs: np.ndarray, axis: str, kind: str = "fractions") -> np.ndarray:
    """Share of (run, target) pairs of `label` whose target was reached by each x (COCO's runtime
    ECDF, aggregated over problems and targets)."""
    targets = targets_of(runs, kind)
    times = [run.hit(t, axis) for run in runs.of(label) for t in targets.get(run.problem, [])]
    if not times:
        return np.zeros(len(xs))
    reached = np.sort(np.array([t for t in times if t is not None]))
    return np.searchsorted(reached, xs, side="right") / len(times)


def horizons(runs: Runs) -> dict[tuple, dict[str, float]]:
    """Per problem, the passes and seconds of its longest run: where the fixed-budget curves end."""
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: {"passes": 0.0, "seconds": 0.0})
    for run in runs.runs:
        for axis in AXES:
            out[run.problem][axis] = max(out[run.problem][axis], run.length[axis])
    return dict(out)


def area_under_curve(run: Run, horizon: float, axis: str) -> float:
    """Mean of the normalized best-so-far over [0, horizon] (0 before the first step, negative
    values counted as 0), integrated exactly: the curve is a step function."""
    return area_under(run.passes if axis == "passes" else run.seconds, np.clip(run.best, 0.0, 1.0), horizon)


def fixed_budget_table(runs: Runs) -> list[dict]:
    """Per strategy: runs, runs stopped early (with their reasons), failed cells, and the mean
    area under the normalized best-so-far curve against passes and against seconds (each
    problem's horizon is its longest run), with its standard error."""
    ends = horizons(runs)
    out = []
    for label in runs.labels:
        mine = runs.of(label)
        row = {
            "strategy": label,
            "runs": len(mine),
            "stopped_early": sum(r.early for r in mine),
            "failed": runs.failed.get(label, 0),
            "final_median": float(np.median([r.best[-1] for r in mine if len(r.best)])) if mine else math.nan,
        }
        for axis in AXES:
            areas = np.array([area_under_curve(r, ends[r.problem][axis], axis) for r in mine])
            row[f"auc_{axis}"] = float(areas.mean()) if len(areas) else math.nan
            row[f"auc_{axis}_sem"] = float(areas.std(ddof=1) / np.sqrt(len(areas))) if len(areas) > 1 else 0.0
        reasons = defaultdict(int)
        for r in mine:
            if r.early:
                reasons[stop_kind(r.reason)] += 1
        row["early_reasons"] = "; ".join(f"{n}x {why}" for why, n in sorted(reasons.items()))
        out.append(row)
    return sorted(out, key=lambda r: -r["auc_passes"] if math.isfinite(r["auc_passes"]) else math.inf)


def curves(
    runs: Runs, label: str, axis: str, points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x (passes or seconds, up to the longest run of the comparison) and the median, 25th and 75th
    percentiles of the normalized best-so-far over all runs of `label` (a run that ended keeps its
    best: that is what its user had by then)."""
    xs = np.linspace(0, max(r.length[axis] for r in runs.runs), points)
    stack = np.vstack([r.best_at(xs, axis) for r in runs.of(label)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # columns before the first step
        return xs, np.nanmedian(stack, 0), np.nanpercentile(stack, 25, 0), np.nanpercentile(stack, 75, 0)


def legend_label(runs: Runs, label: str) -> str:
    """`label` with the point its runs returned (`result`, when the cells record it: databases from
    before it was recorded read as they did), how many stopped early and how many cells failed."""
    mine = runs.of(label)
    early, failed = sum(r.early for r in mine), runs.failed.get(label, 0)
    results = sorted({r.result for r in mine if r.result})
    notes = [
        f"result {'/'.join(results)}" if results else "",
        f"{early}/{len(mine)} stopped early" if early else "",
        f"{failed} failed" if failed else "",
    ]
    notes = [n for n in notes if n]
    return label + (f" ({', '.join(notes)})" if notes else "")


def ecdf_series(runs: Runs, kind: str = "fractions", points: int = 300) -> dict[str, dict[str, tuple]]:
    """Per label with runs, per axis: (x on a log grid from the first point to the longest run,
    the run-time ECDF at x)."""
    labels = [label for label in runs.labels if runs.of(label)]
    out: dict[str, dict[str, tuple]] = {label: {} for label in labels}
    for axis in AXES:
        top = max(r.length[axis] for r in runs.runs)
        low = min((r.passes if axis == "passes" else r.seconds)[0] for r in runs.runs if len(r.passes))
        xs = np.geomspace(max(low, 1e-3), top, points)
        for label in labels:
            out[label][axis] = (xs, ecdf(runs, label, xs, axis, kind))
    return out


def ecdf_title(runs: Runs, kind: str) -> str:
    """What the ECDF pools: every problem, at which targets."""
    targets = (
        "targets " + ", ".join(f"{t:g}" for t in sorted({t for ts in targets_of(runs, kind).values() for t in ts}))
        if kind == "fractions"
        else "budget-based targets"
    )
    return f"Run-time ECDF over all problems and {targets} (of the best value of each problem)"


def fixed_budget_series(runs: Runs) -> tuple[dict[str, dict[str, tuple]], dict[str, dict[str, list]]]:
    """Per label with runs, per axis: the median and interquartile band of `curves`, and the
    (x, y) where each of its runs that stopped early ended."""
    labels = [label for label in runs.labels if runs.of(label)]
    series = {label: {axis: curves(runs, label, axis) for axis in AXES} for label in labels}
    ends = {
        label: {
            axis: [(r.length[axis], r.best[-1]) for r in runs.of(label) if r.early and len(r.best)] for axis in AXES
        }
        for label in labels
    }
    return series, ends
