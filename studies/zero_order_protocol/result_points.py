"""Every returned point of one run: `result` does not change the search, so one run per (strategy,
seed) gives `last`, `best` and `recommend` together, each scored by the common evaluator.

The protocol's setting (3000 passes, population 40, fft:k=8 at 64 px, Lucent's transform draws,
lite0); CMA-ES, the GA and NGOpt; seeds in the outer loop so that a stopped run leaves balanced
results. Each finished run is appended to results_result/points.json (lite0; scores: fvopt's
evaluator, untransformed `value` and `robust_value` over 16 fixed draws).

    python studies/zero_order_protocol/result_points.py --target channel:blocks.4:10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fvopt.evaluate import score_images
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.strategies.base import search_space
from fvopt.strategies.result import best_seen
from fvopt.transforms import make_transforms

OUT = Path(__file__).parent / "results_result" / "points.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="channel:blocks.4:10")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["cmaes", "ga", "ng:NGOpt"])
    args = ap.parse_args()
    net = load_model("lite0")
    objective = parse_target(args.target)
    done = json.loads(OUT.read_text()) if OUT.exists() else []
    for seed in args.seeds:
        for name in args.strategies:
            if any(d["target"] == args.target and d["strategy"] == name and d["seed"] == seed for d in done):
                continue
            strategy = make_strategy(name, popsize=40)
            problem = Problem(
                net, objective, search_space(strategy, make_param("fft", 64)), make_transforms("default"), seed=seed
            )
            result = run(problem, strategy, Budget(passes=3000))
            points = {"best": best_seen(problem, strategy.best)}
            if "last" in strategy.results:
                points["last"] = strategy.last_point()
            if "recommend" in strategy.results:
                points["recommend"] = strategy.recommended_point()
            row = {
                "target": args.target,
                "strategy": name,
                "seed": seed,
                "passes": result.passes,
                "best_seen": result.trace[-1]["best"],
                "default": strategy.default_result,
                "selected": result.extra.get("selected"),
            }
            for kind, z in points.items():
                s = score_images(net, objective, problem.images(z).cpu())
                row[kind] = {"value": float(s["value"].mean()), "robust_value": float(s["robust_value"].mean())}
            done.append(row)
            OUT.write_text(json.dumps(done, indent=1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
