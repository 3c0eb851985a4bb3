"""Study 1: which optimizer reaches the highest activation per second and per model pass, which
gives the most robust and least noisy images, where zero-order search is competitive, and what
the hybrids buy. Runs `spec.toml` through the benchmark harness (resumable), writes the report and
`analysis.md` with the tables the README quotes.

    python studies/optimizer_choice/run.py            # about 40 minutes on 2 cores
    python studies/optimizer_choice/run.py --quick    # 2 optimizers, 1 target, 2 s cells: a smoke test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from fvopt.bench.analysis import at_equal_passes, markdown, mean_by, normalized_scores
from fvopt.bench.comparison import FACTOR_TITLES, compare, significance_markdown
from fvopt.bench.report import write_report
from fvopt.bench.runner import run_spec
from fvopt.bench.spec import parse_spec
from fvopt.bench.store import Store

HERE = Path(__file__).parent
ZERO_ORDER = {"cmaes", "sep-cmaes", "ga", "ng:TwoPointsDE"}
FIRST_ORDER = {"sgd", "momentum", "adam", "normalized", "lbfgs"}


def quick_spec(raw: dict) -> dict:
    raw = {"bench": dict(raw["bench"]), "strategies": [{"name": "adam"}, {"name": "cmaes"}]}
    raw["bench"].update(targets=["channel:blocks.3:20"], params=["fft"], seeds=[0], size=64, budget={"seconds": 2})
    raw["bench"].pop("transfer_model", None)
    return raw


def analyse(rows: list[dict]) -> str:
    parts = []
    robust = normalized_scores(rows, "robust_value")
    parts.append("## Final robust activation, normalized per target (mean over targets and seeds)\n")
    parts.append(markdown(mean_by(robust, ("strategy", "param")), ["strategy", "param", "mean", "sem", "n"]))
    parts.append("\n## By optimizer (all parameterizations)\n")
    parts.append(markdown(mean_by(robust, ("strategy",)), ["strategy", "mean", "sem", "n"]))
    passes = at_equal_passes(rows)
    parts.append("\n## Best value at equal model passes, normalized per target\n")
    parts.append(markdown(mean_by(passes, ("strategy",)), ["strategy", "mean", "sem", "n"]))
    parts.append("\n## Image quality: share of spectral energy in the top band (lower is smoother)\n")
    parts.append(
        markdown(
            sorted(mean_by(rows, ("strategy", "param"), "high_freq_share"), key=lambda r: r["mean"]),
            ["strategy", "param", "mean", "sem", "n"],
            4,
        )
    )
    if any(r["final"].get("transfer_prob") is not None for r in rows):
        parts.append("\n## Class targets: probability of the target class under Lite1 (transfer)\n")
        parts.append(
            markdown(
                mean_by([r for r in rows if r["target"].startswith("class:")], ("strategy", "param"), "transfer_prob"),
                ["strategy", "param", "mean", "sem", "n"],
            )
        )
    parts.append("\n## Zero-order versus first-order, per target (best normalized robust score of each family)\n")
    lines = []
    for target in sorted({r["target"] for r in robust}):
        best = {}
        for family, names in (
            ("zero-order", ZERO_ORDER),
            ("first-order", FIRST_ORDER),
            ("hybrid", {"hybrid:cmaes>adam"}),
            ("guided-es", {"guided-es"}),
        ):
            scores = [r["score"] for r in robust if r["target"] == target and r["strategy"] in names]
            best[family] = float(np.nanmax(scores)) if scores else None
        lines.append({"target": target, **best})
    parts.append(markdown(lines, ["target", "zero-order", "first-order", "hybrid", "guided-es"]))
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    raw = tomllib.loads((HERE / "spec.toml").read_text())
    out = Path(tempfile.mkdtemp(prefix="optimizer_choice_")) if args.quick else HERE / "results"
    if args.quick:
        raw = quick_spec(raw)
    spec = parse_spec(raw, str(HERE / "spec.toml"))
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "results.sqlite")
    summary = run_spec(spec, store, workers=args.workers, progress=not args.quick)
    rows = store.rows()
    store.close()
    write_report(out / "results.sqlite", out / "report", html=False, exports=False)  # the README is the report;
    # `fvopt bench report` on the committed database gives the HTML report and the trace exports
    significance = [
        f"\n## Which differences are significant: {FACTOR_TITLES[factor].lower()} (score: robust value "
        f"normalized per target)\n\n" + significance_markdown(compare(rows, factor=factor))
        for factor in ("strategy", "param", "algorithm")
    ]
    (out / "analysis.md").write_text(analyse(rows) + "\n".join(significance) + "\n")
    print(f"{summary}; analysis in {out / 'analysis.md'}")
    sys.exit(1 if summary.failed else 0)


if __name__ == "__main__":
    main()
