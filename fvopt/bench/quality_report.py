"""Quality measures in a report: the same paired statistics as activation, the controls, and how far
the ranking by quality departs from the ranking by activation.

Each finished cell's `quality` column (fvopt.quality.judge's flat dict) is read into one flat
record per cell. For each measure:

- **informative targets**: a measure ranks strategies on a target only when it means something
  there: at least half of the target's cells have the lower end of their interval above every
  control of the same unit (uniform gray, uniform noise, a random reference image; for
  spectral_distance and diversity gray and noise). On the other targets a control matches or beats
  it: they are listed as uninformative, with the controls' values, and left out of every ranking.
- **paired statistics** (fvopt.bench.stats, as for activation): blocks are (model, target, seed)
  for strategies with their parameterizations; the measure's raw value is compared (the measures
  are already on one scale across units: ratios to natural images, probabilities, fractions of
  pairs, cosines), its sign turned for spectral_distance (lower is better); Friedman, Wilcoxon with
  Holm's correction, rank-biserial effects, win rates.
- **agreement with activation**: Spearman's correlation between the strategies' mean ranks by the
  measure and by robust activation over the same blocks, with a 95% percentile bootstrap interval
  over blocks (scipy.stats.bootstrap).

Every table names the reference set its numbers came from; cells judged against another reference
set (or not judged) are counted and left out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .rows import algorithm_labels, problem_of
from .tables import markdown_table

AGREEMENT_SAMPLES = 999


def ranked() -> dict[str, int]:
    """Each value the registered measures write -> +1 (higher is better) or -1 (lower is better); those
    without a better side (spectral_slope) are shown, never ranked (fvopt.quality.registry)."""
    from ..quality.registry import ranked as registered

    return registered()


def shown() -> tuple[str, ...]:
    """Every value the registered measures write, in registration order."""
    from ..quality.registry import shown as registered

    return registered()


def control_names() -> tuple[str, ...]:
    from ..quality.measures import CONTROLS

    return CONTROLS


def quality_records(rows: list[dict]) -> list[dict]:
    """One flat record per finished cell: its identity, activation (value, robust value, and as saved
    in 8 bits), and every measure with its interval, controls and informative flag; None where the
    cell has no quality column."""
    labels = algorithm_labels(rows)
    out = []
    from ..quality.score import upgrade_quality

    for i, r in enumerate(rows):
        q = upgrade_quality(r.get("quality")) if isinstance(r.get("quality"), dict) else {}  # older names read too
        f = r.get("final") or {}
        rec = {
            "model": r.get("model"),
            "target": r["target"],
            "strategy": labels[i],
            "optimizer": r["strategy"],
            "param": r["param"],
            "seed": r["seed"],
            "value": f.get("value"),
            "robust_value": f.get("robust_value"),
            "value_8bit": f.get("value_8bit", q.get("value_8bit")),
            "robust_8bit": f.get("robust_8bit", q.get("robust_8bit")),
            "reference": q.get("reference") if q else None,
            "judge": q.get("judge"),
            "image_source": q.get("image_source"),
            "error": q.get("error"),
            "natural_ratio_max": q.get("natural_ratio_max"),
            "robust_activation": q.get("robust_activation"),
        }
        for m in shown():
            for suffix in ("", "_lo", "_hi", "_informative", *(f"_{c}" for c in control_names())):
                rec[m + suffix] = q.get(m + suffix)
        out.append(rec)
    return out


def main_reference(records: list[dict]) -> tuple[str | None, int, int]:
    """(the reference set most cells were judged against, cells judged against another, cells not judged)."""
    named = Counter(r["reference"] for r in records if r["reference"] and r["reference"] != "none")
    if not named:
        return None, 0, sum(1 for r in records if not r["reference"])
    ref, n = named.most_common(1)[0]
    return ref, sum(named.values()) - n, sum(1 for r in records if not r["reference"])


def informative_targets(records: list[dict], measure: str) -> dict[tuple, dict]:
    """Per problem (model, target) with values of `measure`: whether it is informative there (at least
    half of its cells beat every control), the share of cells that do, the median cell value and the
    controls' medians (the reason, when it is not)."""
    out = {}
    for problem in sorted({problem_of(r) for r in records}, key=str):
        mine = [r for r in records if problem_of(r) == problem and _finite(r.get(measure))]
        if not mine:
            continue
        flags = [r.get(f"{measure}_informative") for r in mine if r.get(f"{measure}_informative") is not None]
        share = float(np.mean(flags)) if flags else math.nan
        controls = {
            c: float(np.median(v))
            for c in control_names()
            if (v := [r[f"{measure}_{c}"] for r in mine if _finite(r.get(f"{measure}_{c}"))])
        }
        out[problem] = {
            "informative": bool(flags) and share >= 0.5,
            "share": share,
            "median": float(np.median([r[measure] for r in mine])),
            "controls": controls,
        }
    return out


@dataclass
class QualityComparison:
    """One measure's paired comparison of strategies over the targets where it is informative."""

    measure: str
    reference: str | None
    table: (
        pd.DataFrame
    )  # blocks (model, target, seed, other) x strategies, raw values (sign turned when lower is better)
    targets: dict[tuple, dict]
    friedman: dict
    pairs: pd.DataFrame
    ranks: pd.Series
    wins: dict[str, pd.DataFrame] | None
    agreement: dict = field(default_factory=dict)

    @property
    def ranked(self) -> bool:
        return len(self.table) >= 1 and self.table.shape[1] >= 2

    def uninformative(self) -> list[str]:
        """Targets where a control matched or beat the measure, with the numbers."""
        return [
            f"{t[1]} (median cell {v['median']:.3g}; "
            + ", ".join(f"{c} {x:.3g}" for c, x in v["controls"].items())
            + f"; {0 if math.isnan(v['share']) else v['share']:.0%} of cells beat every control)"
            for t, v in self.targets.items()
            if not v["informative"]
        ]

    def conclusions(self) -> list[str]:
        """Plain sentences: where the measure ranks, the Friedman verdict, the best, the pairs that
        survive Holm's correction and the agreement with activation."""
        m, n_t = self.measure, len(self.targets)
        good = sum(v["informative"] for v in self.targets.values())
        lines = [
            f"{m} (reference: {self.reference}): informative on {good} of {n_t} targets"
            + (
                ""
                if good == n_t
                else "; uninformative (a control matched or beat it, not ranked) on " + "; ".join(self.uninformative())
            )
        ]
        if not self.ranked:
            lines.append(
                f"{m} is not ranked: no target where it beats its controls"
                if not good
                else f"{m} is not ranked: fewer than two strategies with complete blocks"
            )
            return lines
        f = self.friedman
        best = self.ranks.index[0]
        lines.append(
            f"{len(self.table)} complete blocks; Friedman "
            + (f"chi2 = {f['statistic']:.1f}, p = {f['p']:.2g}" if not math.isnan(f["p"]) else f["note"])
            + f"; first by mean rank: {best} ({self.ranks.iloc[0]:.2f})"
            + (f", then {self.ranks.index[1]} ({self.ranks.iloc[1]:.2f})" if len(self.ranks) > 1 else "")
        )
        if len(self.pairs):
            sig = self.pairs[self.pairs["significant"]]
            lines.append(
                f"{len(sig)} of {len(self.pairs)} pairs differ after Holm's correction"
                + (
                    ": "
                    + "; ".join(
                        f"{r.a} {'>' if r.median_diff > 0 else '<'} {r.b} (p_holm {r.p_holm:.2g})"
                        for r in sig.itertuples()
                    )
                    if 0 < len(sig) <= 10
                    else ""
                )
            )
            floor, needed, fewest = stats.holm_power(len(self.table), len(self.pairs))
            if floor > needed:
                pairs = f"{len(self.pairs)} pair{'s' * (len(self.pairs) != 1)}"
                lines.append(
                    f"with {len(self.table)} blocks no pair can be significant (smallest exact Wilcoxon p "
                    f"{floor:.2g} > {needed:.2g}, Holm's first step for {pairs}); {fewest} would be needed"
                )
        a = self.agreement
        if a:
            lines.append(
                f"rank correlation with activation (Spearman, strategies' mean ranks over the same "
                f"{a['blocks']} blocks): {a['rho']:.2f}, 95% bootstrap interval [{a['lo']:.2f}, {a['hi']:.2f}]"
            )
        return lines


def paired_quality(
    records: list[dict], measure: str, informative_only: bool = True, factor: str = "algorithm"
) -> tuple[pd.DataFrame, dict]:
    """Blocks (model, target, seed, other) by strategy of the measure's raw value (times -1 when lower
    is better), on informative targets only (unless told otherwise); incomplete blocks left out.
    `factor` as in stats.paired_scores: "algorithm" (strategy with parameterization, other ''),
    "strategy" (optimizers on the same parameterization: other = the parameterization)."""
    if factor not in ("algorithm", "strategy"):
        raise ValueError(f"factor {factor!r}: allowed are algorithm, strategy")
    targets = informative_targets(records, measure)
    keep = {t for t, v in targets.items() if v["informative"] or not informative_only}
    sign = ranked()[measure]
    frame = pd.DataFrame(
        [
            {
                "model": str(r["model"]),
                "target": r["target"],
                "seed": r["seed"],
                "other": "" if factor == "algorithm" else r["param"],
                "strategy": r["strategy"] if factor == "algorithm" else r["optimizer"],
                "score": sign * r[measure],
            }
            for r in records
            if problem_of(r) in keep and _finite(r.get(measure))
        ],
        columns=["model", "target", "seed", "other", "strategy", "score"],
    )
    if frame.empty:
        return pd.DataFrame(), targets
    table = frame.pivot_table(
        index=["model", "target", "seed", "other"], columns="strategy", values="score", aggfunc="first", dropna=False
    )
    return table.dropna(), targets


def rank_agreement(quality: pd.DataFrame, activation: pd.DataFrame, seed: int = 0) -> dict:
    """Spearman correlation of the strategies' mean ranks by quality and by activation over the
    blocks both have, with a percentile bootstrap interval over those blocks (scipy.stats.bootstrap)."""
    from scipy import stats as sps

    blocks = quality.index.intersection(activation.index)
    columns = [c for c in quality.columns if c in activation.columns]
    if len(blocks) < 2 or len(columns) < 3:
        return {}
    q = quality.loc[blocks, columns].to_numpy()
    a = activation.loc[blocks, columns].to_numpy()
    rq = np.apply_along_axis(sps.rankdata, 1, -q)
    ra = np.apply_along_axis(sps.rankdata, 1, -a)

    def rho(idx):
        idx = np.asarray(idx, dtype=int)
        return sps.spearmanr(rq[idx].mean(0), ra[idx].mean(0)).statistic

    value = float(rho(np.arange(len(blocks))))
    res = sps.bootstrap(
        (np.arange(len(blocks)),),
        rho,
        n_resamples=AGREEMENT_SAMPLES,
        method="percentile",
        vectorized=False,
        random_state=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"rho": value, "lo": float(lo), "hi": float(hi), "blocks": len(blocks), "strategies": len(columns)}


def compare_quality(rows: list[dict], measure: str, factor: str = "algorithm") -> QualityComparison:
    """The paired comparison of one measure, over the cells judged against the main reference set
    (`factor`: "algorithm" or "strategy", as in paired_quality)."""
    records = quality_records(rows)
    reference, _, _ = main_reference(records)
    records = [r for r in records if r["reference"] in (reference, "none") or measure == "spectral_slope"]
    table, targets = paired_quality(records, measure, factor=factor)
    enough = table.shape[1] >= 2 and len(table) >= 1
    pairs = stats.pairwise(table) if enough else stats.pairwise(pd.DataFrame())
    activation = stats.paired_scores(rows, "robust_value", factor).table
    return QualityComparison(
        measure,
        reference,
        table,
        targets,
        stats.friedman(table) if enough else {"statistic": math.nan, "p": math.nan, "note": "not run"},
        pairs,
        stats.mean_ranks(table) if len(table) else pd.Series(dtype=float),
        stats.win_rates(table) if enough else None,
        rank_agreement(table, activation) if enough else {},
    )


def ranked_measures(records: list[dict]) -> list[str]:
    return [m for m in ranked() if any(_finite(r.get(m)) for r in records)]


def means_by(records: list[dict], key: str = "optimizer") -> list[dict]:
    """Each measure's mean per `key` (optimizer, strategy or param) over all judged cells, with the
    share of cells where the measure beat every control; value and value_8bit beside them."""
    out = []
    for name in sorted({r[key] for r in records}):
        mine = [r for r in records if r[key] == name]
        row = {key: name, "cells": len(mine)}
        for m in ("robust_value", "robust_8bit", *shown()):
            v = [r[m] for r in mine if _finite(r.get(m))]
            row[m] = float(np.mean(v)) if v else None
            flags = [r.get(f"{m}_informative") for r in mine if r.get(f"{m}_informative") is not None]
            row[f"{m}_beats_controls"] = float(np.mean(flags)) if flags else None
        out.append(row)
    return out


def quality_markdown(rows: list[dict], comparisons: list[QualityComparison] | None = None, level: str = "##") -> str:
    """quality.md: the reference set, each measure's conclusions and paired tests, the means per
    strategy, and how many cells a saved 8-bit picture changes."""
    records = quality_records(rows)
    reference, other, unjudged = main_reference(records)
    comparisons = (
        comparisons if comparisons is not None else [compare_quality(rows, m) for m in ranked_measures(records)]
    )
    parts = [
        f"{level} Quality measures",
        "",
        f"Reference set: {reference or 'none'}; judge: "
        + ", ".join(sorted({str(r["judge"]) for r in records if r["judge"]}))
        + f"; {len(records)} cells"
        + (
            f", {other} judged against another reference set (left out; `fvopt bench rescore` judges them again)"
            if other
            else ""
        )
        + (f", {unjudged} not judged" if unjudged else "")
        + ".",
        "",
        "Images read: "
        + ", ".join(f"{n} {s}" for s, n in Counter(r["image_source"] for r in records if r["image_source"]).items())
        + ".",
        "",
    ]
    changed = [
        r
        for r in records
        if _finite(r.get("robust_8bit"))
        and _finite(r.get("robust_value"))
        and abs(r["robust_8bit"] - r["robust_value"]) > 0.05 * abs(r["robust_value"])
    ]
    with8 = sum(1 for r in records if _finite(r.get("robust_8bit")))
    if with8:
        parts += [
            f"The picture as saved (8-bit PNG): {len(changed)} of {with8} cells change their robust activation "
            "by more than 5% (`robust_8bit` against `robust_value`).",
            "",
        ]
    for c in comparisons:
        parts += [f"{level}# {c.measure}", "", *[f"- {line}" for line in c.conclusions()], ""]
        if c.ranked and len(c.pairs):
            sig = c.pairs[c.pairs["significant"]]
            if len(sig):
                parts += [
                    "Pairs that differ after Holm's correction (median_diff > 0: a is better):",
                    "",
                    markdown_table(
                        sig.to_dict("records"), ["a", "b", "blocks", "median_diff", "rank_biserial", "p", "p_holm"]
                    ),
                    "",
                ]
            parts += [
                "Mean ranks (1 = best of the block, informative targets only):",
                "",
                markdown_table(
                    [{"strategy": k, "mean_rank": float(v)} for k, v in c.ranks.items()], ["strategy", "mean_rank"]
                ),
                "",
            ]
    parts += [
        f"{level}# Means per optimizer (all judged cells; reference: {reference})",
        "",
        "beats: share of cells whose interval lies above every control of their unit.",
        "",
        markdown_table(means_by(records), means_columns(), number=".3g"),
        "",
    ]
    return "\n".join(parts)


def means_columns() -> list[str]:
    """The means table's columns: activation, then what each registered measure declares (`Output.means`)."""
    from ..quality.registry import all_outputs

    return ["optimizer", "cells", "robust_value", "robust_8bit"] + [
        o.name + suffix for o in all_outputs() for suffix in o.means
    ]


def cell_columns() -> list[str]:
    """quality_cells.csv's columns: each cell's identity, activation and every measure with its interval."""
    return [
        "model",
        "target",
        "strategy",
        "seed",
        "robust_value",
        "robust_8bit",
        *[m + s for m in shown() for s in ("", "_lo", "_hi", "_informative")],
        "reference",
        "judge",
        "image_source",
        "error",
    ]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class QualitySection:
    """What a report shows of the quality measures: the comparisons, and per problem its scatter
    figure and its unit's dataset examples (None where they could not be made, with the reason)."""

    reference: str | None
    comparisons: list[QualityComparison]
    records: list[dict]
    scatters: dict[tuple, "Path"] = field(default_factory=dict)
    examples: dict[tuple, "Path"] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def write_quality(rows: list[dict], out, examples: bool = True) -> tuple[QualitySection | None, list]:
    """quality.md, quality_cells.csv, one scatter per target (quality against activation) and, with
    `examples`, each unit's dataset examples (fvopt.quality.examples, from the cached reference
    pass) into `out`; (None, []) when no cell was judged."""
    section, written = collect_quality(rows, out, examples)
    if section is not None:
        (Path(out) / "quality.md").write_text(quality_markdown(rows, section.comparisons, level="#") + "\n")
        written.insert(0, Path(out) / "quality.md")
    return section, written


def collect_quality(rows: list[dict], out, examples: bool = True) -> tuple[QualitySection | None, list]:
    """What a report shows of the quality measures, with its files (quality_cells.csv, the scatters,
    the dataset examples) written into `out`; quality.md is `quality_markdown` of the same comparisons;
    (None, []) when no cell was judged."""
    from .quality_plots import plot_quality_scatter
    from .rows import problems, problem_title, slug
    from .tables import write_csv

    records = quality_records(rows)
    if not any(r["reference"] or any(_finite(r.get(m)) for m in shown()) for r in records):
        return None, []
    out = Path(out)
    reference, _, _ = main_reference(records)
    comparisons = [compare_quality(rows, m) for m in ranked_measures(records)]
    section = QualitySection(reference, comparisons, records)
    written = []
    write_csv(records, cell_columns(), out / "quality_cells.csv")
    written += [out / "quality_cells.csv"]
    several = len({r.get("model") for r in rows}) > 1
    for model, target in problems(rows):
        mine = [r for r in records if (r["model"], r["target"]) == (model, target)]
        path = out / f"quality_{slug(str(model)) + '_' if several else ''}{slug(target)}.png"
        plot_quality_scatter(mine, list(shown()), path, problem_title(model, target, rows), str(reference))
        if path.exists():
            section.scatters[(model, target)] = path
            written.append(path)
    if examples and reference:
        settings = Counter(
            str((r.get("quality") or {}).get("settings", {}).get("reference"))
            for r in rows
            if (r.get("quality") or {}).get("reference") == reference
        )
        source = settings.most_common(1)[0][0] if settings else None
        for model, target in problems(rows):
            folder = out / "examples" / f"{slug(str(model)) + '_' if several else ''}{slug(target)}"
            try:
                from ..quality.examples import dataset_examples, write_examples

                found, layer_stats, ref = dataset_examples(str(model), target, source, top=6, progress=False)
                files = write_examples(found, layer_stats, ref, str(model), target, folder)
                section.examples[(model, target)] = files[0]
                written += files
            except Exception as err:  # noqa: BLE001 - the report is written without them, and says why
                section.notes.append(f"no dataset examples for {target}: {err}")
    return section, written
