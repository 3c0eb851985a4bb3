"""Issue 21 item 5: re-judge a study's committed database with the quality measures and write what
changes (no cell is re-run).

    python studies/quality_study.py optimizer_choice --rescore   # judge the cells not judged yet (resumable)
    python studies/quality_study.py zero_order_protocol          # write results/quality.md and the grids

The rescore is `fvopt bench rescore results/results.sqlite --reference builtin --judge lite1`: the
built-in stand-in (scikit-image crops; the only reference set available offline) and Lite1 as the
judge of Lite0's images, read back from the 8-bit PNGs these databases keep (they predate exact
images). It judges whole paired blocks first (seed by seed), so a rescore stopped part way leaves a
documented subset: `quality.md` says how many cells it covers.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np

from fvopt.bench.quality_report import (
    compare_quality,
    main_reference,
    means_by,
    means_columns,
    quality_markdown,
    quality_records,
    ranked,
)
from fvopt.bench.rescore import rescore, summary_line
from fvopt.bench.rows import slug
from fvopt.bench.store import Store
from fvopt.bench.tables import markdown_table

HERE = Path(__file__).parent
SHORT = {"natural_ratio": "nat", "plausibility": "pla", "mis": "mis", "transfer": "tra", "spectral_distance": "sd"}


def judged_rows(db: Path) -> tuple[list[dict], int]:
    store = Store(db, readonly=True)
    try:
        rows = store.rows("done")
    finally:
        store.close()
    judged = [r for r in rows if isinstance(r.get("quality"), dict) and r["quality"].get("reference")]
    return judged, len(rows)


def first_by_measure(rows: list[dict]) -> list[dict]:
    """Per measure: the optimizer first by mean rank (optimizers compared on the same parameterization,
    informative targets only), the pairs that survive Holm, and the agreement with activation."""
    out = []
    for m in ranked():
        c = compare_quality(rows, m, factor="strategy")
        if not c.targets:
            continue
        good = sum(v["informative"] for v in c.targets.values())
        sig = c.pairs[c.pairs["significant"]] if len(c.pairs) else c.pairs
        a = c.agreement
        out.append(
            {
                "measure": m,
                "informative_targets": f"{good} of {len(c.targets)}",
                "blocks": len(c.table) if c.ranked else 0,
                "first": f"{c.ranks.index[0]} ({c.ranks.iloc[0]:.2f})" if c.ranked else "not ranked",
                "second": f"{c.ranks.index[1]} ({c.ranks.iloc[1]:.2f})" if c.ranked and len(c.ranks) > 1 else "",
                "friedman_p": c.friedman["p"] if c.ranked else None,
                "holm_pairs": f"{len(sig)} of {len(c.pairs)}" if c.ranked else "",
                "rho_activation": f"{a['rho']:.2f} [{a['lo']:.2f}, {a['hi']:.2f}]" if a else "",
            }
        )
    return out


def activation_first(rows: list[dict]) -> str:
    from fvopt.bench import stats

    table = stats.paired_scores(rows, "robust_value", "strategy").table
    ranks = stats.mean_ranks(table)
    return f"{ranks.index[0]} ({ranks.iloc[0]:.2f}), then {ranks.index[1]} ({ranks.iloc[1]:.2f}); {len(table)} blocks"


def surviving_pairs(rows: list[dict], measure: str, limit: int = 12) -> list[dict]:
    c = compare_quality(rows, measure, factor="strategy")
    if not c.ranked or not len(c.pairs):
        return []
    sig = c.pairs[c.pairs["significant"]].sort_values("p_holm")
    return sig.head(limit).to_dict("records")


def image_grid(rows: list[dict], path: Path, seed: int, param: str | None) -> Path | None:
    """Final images (one seed, one parameterization): optimizers down, targets across, each captioned
    with its robust activation and its measures (lower case: a control matched or beat it there)."""
    from PIL import Image

    from fvopt.bench.plots import new_figure

    mine = [r for r in rows if r["seed"] == seed and (param is None or r["param"] == param)]
    if not mine:
        return None
    strategies = sorted({r["strategy"] for r in mine})
    targets = sorted({r["target"] for r in mine})
    at = {(r["strategy"], r["target"]): r for r in mine}
    fig = new_figure((1.9 * len(targets) + 1.2, 1.95 * len(strategies) + 0.6))
    axes = fig.subplots(len(strategies), len(targets), squeeze=False)
    for i, s in enumerate(strategies):
        for j, t in enumerate(targets):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            r = at.get((s, t))
            if r is not None:
                ax.imshow(Image.open(io.BytesIO(r["image"])))
                q = r["quality"]
                parts = [f"act {r['final']['robust_value']:.3g}"]
                for m, short in SHORT.items():
                    v = q.get(m)
                    if isinstance(v, float) and math.isfinite(v):
                        parts.append(
                            f"{short if q.get(m + '_informative') is not False else short.upper() + '*'} {v:.2g}"
                        )
                ax.set_xlabel("\n".join([" ".join(parts[:3]), " ".join(parts[3:])]), fontsize=5.5)
            if i == 0:
                ax.set_title(t.replace("channel:", ""), fontsize=7)
            if j == 0:
                ax.set_ylabel(s, fontsize=7)
    fig.suptitle(
        f"seed {seed}{', ' + param if param else ''}: act = robust activation; nat natural_ratio, pla "
        "plausibility, mis,\ntra transfer, sd spectral_distance (UPPER*: a control matched or beat it)",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=80, pil_kwargs={"quality": 80})
    return path


def write(study: str) -> Path:
    out = HERE / study / "results"
    rows, total = judged_rows(out / "results.sqlite")
    records = quality_records(rows)
    reference, _, _ = main_reference(records)
    seeds = sorted({r["seed"] for r in rows})
    parts = [
        f"# {study}: quality measures (issue 21)",
        "",
        f"Re-judged from the committed database, no cell re-run: {len(rows)} of {total} cells "
        f"(seeds {', '.join(map(str, seeds))}; judged seed by seed, whole blocks first), "
        f"reference set: {reference}, judge: lite1, images read from the 8-bit PNGs the database keeps.",
        "",
        "## Which optimizer ranks first by each measure",
        "",
        "Optimizers compared on the same parameterization (blocks: target, seed, parameterization), "
        "on the targets where the measure beats its controls; rho: Spearman correlation of the "
        "optimizers' mean ranks by the measure and by robust activation over the same blocks, with its "
        "95% bootstrap interval over blocks.",
        "",
        f"By robust activation (all judged cells): {activation_first(rows)}.",
        "",
        markdown_table(
            first_by_measure(rows),
            [
                "measure",
                "informative_targets",
                "blocks",
                "first",
                "second",
                "friedman_p",
                "holm_pairs",
                "rho_activation",
            ],
            number=".2g",
        ),
        "",
    ]
    for m in ranked():
        pairs = surviving_pairs(rows, m)
        if pairs:
            parts += [
                f"### {m}: pairs that survive Holm's correction (up to 12, smallest p first; median_diff > 0: "
                "a is better)",
                "",
                markdown_table(pairs, ["a", "b", "blocks", "median_diff", "rank_biserial", "p_holm"], number=".3g"),
                "",
            ]
    parts += [
        "## Means per optimizer",
        "",
        markdown_table(means_by(records), means_columns(), number=".3g"),
        "",
    ]
    params = sorted({r["param"] for r in rows})
    grids = []
    for param in params:
        g = image_grid(
            rows, out / f"quality_grid_seed{seeds[0]}_{slug(param)}.jpg", seeds[0], param if len(params) > 1 else None
        )
        if g:
            grids.append(g)
    parts += ["## Image grids", ""] + [f"![{g.stem}]({g.name})" for g in grids] + [""]
    parts += ["## Everything (the report's quality.md)", "", quality_markdown(rows, level="###")]
    (out / "quality.md").write_text("\n".join(parts) + "\n")
    return out / "quality.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", choices=["optimizer_choice", "zero_order_protocol"])
    ap.add_argument("--rescore", action="store_true", help="judge the cells not judged yet first (resumable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    args = ap.parse_args()
    db = HERE / args.study / "results" / "results.sqlite"
    if args.rescore:
        s = rescore(db, "builtin", "lite1", None, seeds=args.seeds)
        print(summary_line(db, s, "reference builtin, judge lite1"))
    print(f"wrote {write(args.study)}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
