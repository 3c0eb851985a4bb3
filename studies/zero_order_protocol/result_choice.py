"""Does the returned point (`result=last|best|recommend`, issue 22) change the zero-order ranking?

The protocol's budget and setting (3000 passes, population 40, fft:k=8 at 64 px, Lucent's transform
draws), on a subset (2 channels x 3 repeats, as the 2 shared CPU cores allow), for CMA-ES, the GA
and nevergrad's NGOpt, each with its default and with `best` (and `recommend` where it differs):
cmaes last (its mean; pycma's xfavorite is the same point) and best; ga last (the fittest of the
last generation) and best; ng:NGOpt recommend and best. Written to a database of its own
(results_result/), so the protocol's committed database is untouched.

    python studies/zero_order_protocol/result_choice.py             # the subset (36 cells)
    python studies/zero_order_protocol/result_choice.py --analyse-only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fvopt.bench.analysis import markdown, mean_by, normalized_scores
from fvopt.bench.runner import run_spec
from fvopt.bench.spec import parse_spec
from fvopt.bench.store import Store

HERE = Path(__file__).parent
CHANNELS = ["channel:blocks.2:3", "channel:blocks.4:10"]
CELLS = [
    ("cmaes", "last"),
    ("cmaes", "best"),
    ("ga", "last"),
    ("ga", "best"),
    ("ng:NGOpt", "recommend"),
    ("ng:NGOpt", "best"),
]


def build_spec(repeats: int) -> dict:
    return {
        "bench": {
            "name": "zero_order_result_choice",
            "size": 64,
            "seeds": list(range(repeats)),
            "models": ["lite0"],
            "targets": CHANNELS,
            "params": ["fft:k=8"],
            "transforms": "default",
            "budget": {"passes": 3000},
        },
        "strategies": [{"name": n, "label": f"{n} result={r}", "popsize": 40, "result": r} for n, r in CELLS],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--analyse-only", action="store_true")
    args = ap.parse_args()
    out = HERE / "results_result"
    out.mkdir(exist_ok=True)
    raw = build_spec(args.repeats)
    (out / "spec.json").write_text(json.dumps(raw, indent=1))
    spec = parse_spec(raw, "zero_order_result_choice")
    store = Store(out / "results.sqlite")
    if not args.analyse_only:
        run_spec(spec, store, progress=False, log=print)
    keys = {c.key for c in spec.cells}
    rows = [r for r in store.rows() if r["key"] in keys and r.get("status") == "done"]
    store.close()
    for r in rows:
        r["method"] = r["strategy"]
        r["selected"] = r["extra"].get("selected", "")
    text = [
        f"{len(rows)} cells ({', '.join(CHANNELS)} x {args.repeats} repeats, 3000 passes, population 40, "
        "fft:k=8 at 64 px, Lucent's transforms; lite0, reference set: this study's own cells)\n"
    ]
    for measure, what in (
        ("robust_value", "robust (fixed evaluator: 16 draws no method saw)"),
        ("value", "value of the returned image, untransformed"),
        ("best_seen", "best value seen during the search (does not depend on result)"),
    ):
        table = mean_by(normalized_scores(rows, measure), ("method",))
        per = {(m["method"], m["target"]): m["mean"] for m in mean_by(rows, ("method", "target"), measure)}
        for t in table:
            for target in CHANNELS:
                t[target] = per.get((t["method"], target))
        text.append(
            f"### {what}: normalized per channel by the best of any cell; raw means per channel\n\n"
            + markdown(table, ["method", "mean", "sem", "n", *CHANNELS])
            + "\n"
        )
    selected = sorted({r["selected"] for r in rows if r["selected"]})
    text.append("NGOpt selected: " + "; ".join(selected) + "\n")
    (out / "analysis.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
