"""Ratio of one CMA-ES iteration (population 16, 128 px, lite0) to one bare batched forward of 16 images.

fvopt: `strategy.step(problem)` for `cmaes` on fft:k=8 (918 dims), popsize 16, default transforms,
class:8: ask, render 16 images, transform, one batched forward, tell. Bare: lite0's network on 16
random 128 px images, no grad. The two alternate in one run (medians). Target: at most 1.3.
pycma recomputes its eigendecomposition every few iterations (about 0.2 s at 918 dims); the
mean over iterations, which includes it, is printed too.

    python benchmarks/population_eval.py [--device cpu] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from _timing import interleaved, sync
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Problem
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--popsize", type=int, default=16)
    ap.add_argument("--target", default="class:8")
    ap.add_argument("--transforms", default="default")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_model("lite0", device=device)
    problem = Problem(
        model, parse_target(args.target), make_param("fft:k=8", args.size), make_transforms(args.transforms)
    )
    strategy = make_strategy("cmaes", popsize=args.popsize)
    strategy.start(problem, problem.init())
    x = torch.rand(args.popsize, 3, args.size, args.size, device=device)

    def bare() -> None:
        with torch.no_grad():
            model.net((x - model.mean) / model.std)

    def ours() -> None:
        strategy.step(problem)

    b, o = interleaved(bare, ours, args.rounds, device)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.rounds):
        strategy.step(problem)
    sync(device)
    mean_iteration = (time.perf_counter() - start) / args.rounds
    print(
        f"device {device}, threads {torch.get_num_threads()}, size {args.size}, popsize {args.popsize}, "
        f"fft:k=8 ({problem.dim} dims), transforms {args.transforms}"
    )
    print(f"bare batched forward of {args.popsize}: {1000 * b:.1f} ms")
    print(
        f"fvopt CMA-ES iteration: {1000 * o:.1f} ms (median); {1000 * mean_iteration:.1f} ms (mean, with pycma's "
        "periodic eigendecomposition)"
    )
    print(f"ratio fvopt/bare: {o / b:.3f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
