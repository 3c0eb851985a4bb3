"""Ratio of one CMA-ES iteration (population 16, 128 px, lite0) to one bare batched forward of 16 images.

fvopt: `cmaes` on fft:k=8 (918 dims), popsize 16, default transforms, class:8, through the run
loop: ask, render 16 images, transform, one batched forward, tell. Bare: lite0's network on 16
random 128 px images, no grad. Measured in this run, median of repeats. Target: at most 1.3.

    python benchmarks/population_eval.py [--device cpu] [--iterations 10]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.transforms import standard_transforms


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward(model, device, size: int, pop: int) -> float:
    x = torch.rand(pop, 3, size, size, device=device)
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        model.net((x - model.mean) / model.std)
    sync(device)
    return time.perf_counter() - t


def cma_iterations(model, device, size: int, pop: int, iterations: int, target: str) -> float:
    problem = Problem(model, parse_target(target), make_param("fft:k=8", size), standard_transforms())
    result = run(problem, make_strategy("cmaes", popsize=pop), Budget(steps=iterations + 1))
    sync(device)
    times = [b["time_s"] - a["time_s"] for a, b in zip(result.trace, result.trace[1:])]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--popsize", type=int, default=16)
    ap.add_argument("--target", default="class:8")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_model("lite0", device=device)
    for _ in range(2):
        bare_forward(model, device, args.size, args.popsize)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(statistics.median(bare_forward(model, device, args.size, args.popsize) for _ in range(args.iterations)))
        ours.append(cma_iterations(model, device, args.size, args.popsize, args.iterations, args.target))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"device {device}, threads {torch.get_num_threads()}, size {args.size}, popsize {args.popsize}, fft:k=8 (918 dims)")
    print(f"bare batched forward of {args.popsize}: {1000 * b:.1f} ms")
    print(f"fvopt CMA-ES iteration: {1000 * o:.1f} ms")
    print(f"ratio fvopt/bare: {o / b:.3f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
