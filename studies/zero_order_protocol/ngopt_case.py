"""Issue 22's NGOpt case: channel:blocks.4:10 at 128 px, one NGOpt run, the three returned points.

The issue ran 20 s; on a shared CPU a time budget measures the neighbours, so this spends a pass
budget instead (--passes, default 3000: about what 20 s buys on a quiet 2-core CPU at 128 px).
`result` does not change the search, so one run gives every choice: nevergrad's recommendation
(`result=recommend`, the default), the best point evaluated (`result=best`), each scored on the
evaluator's fixed draws (robust) and untransformed (value), with what NGOpt selected.

    python studies/zero_order_protocol/ngopt_case.py [--passes 3000] [--seed 0]
    python studies/zero_order_protocol/ngopt_case.py --seconds 20 --out .../ngopt_case_20s.json   # the issue's
                                                     # budget, on a quiet machine (nevergrad told the evaluations
                                                     # its first generation's cost predicts)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=None, help="a time budget instead of --passes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results_result" / "ngopt_case.json"))
    args = ap.parse_args()
    net = load_model("lite0")
    objective = parse_target("channel:blocks.4:10")
    strategy = make_strategy("ng:NGOpt")
    param = search_space(strategy, make_param("fft", 128))
    problem = Problem(net, objective, param, make_transforms("default"), seed=args.seed)
    budget = Budget(seconds=args.seconds) if args.seconds else Budget(passes=args.passes)
    result = run(problem, strategy, budget)
    points = {"recommend": strategy.recommended_point(), "best": best_seen(problem, strategy.recommended_point())}
    out = {
        "target": str(objective),
        "size": 128,
        "param": param.name,
        "passes": result.passes,
        "budget": str(budget),
        "seed": args.seed,
        "status": result.extra,
        "best_seen_during_search": result.trace[-1]["best"],
    }
    for name, z in points.items():
        scores = score_images(net, objective, problem.images(z).cpu())
        out[name] = {"value": float(scores["value"].mean()), "robust_value": float(scores["robust_value"].mean())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
