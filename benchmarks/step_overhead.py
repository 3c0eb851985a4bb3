"""Ratio of one fvopt optimization step to one bare forward+backward of the same model.

fvopt step: Adam on the fft parameterization, Lucent's default transforms, batch 1, 224 px,
target class:8 (the full network runs), through the real run loop. Bare: lite0's network on a
224 px input that requires grad, forward, backward of one logit. Both measured in this run,
interleaved, median of repeats. Target: at most 1.15 on CPU.

    python benchmarks/step_overhead.py [--device cpu] [--steps 20] [--target class:8]
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


def bare_step(model, device, size: int) -> float:
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    sync(device)
    t = time.perf_counter()
    logits = model.net((x - model.mean) / model.std)
    logits[0, 8].backward()
    sync(device)
    return time.perf_counter() - t


def fvopt_steps(model, device, size: int, steps: int, target: str) -> float:
    problem = Problem(model, parse_target(target), make_param("fft", size), standard_transforms())
    result = run(problem, make_strategy("adam"), Budget(steps=steps))
    sync(device)
    times = [b["time_s"] - a["time_s"] for a, b in zip(result.trace, result.trace[1:])]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--target", default="class:8")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_model("lite0", device=device)
    for _ in range(3):
        bare_step(model, device, args.size)  # warm-up
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(statistics.median(bare_step(model, device, args.size) for _ in range(args.steps)))
        ours.append(fvopt_steps(model, device, args.size, args.steps, args.target))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"device {device}, threads {torch.get_num_threads()}, size {args.size}, target {args.target}")
    print(f"bare forward+backward: {1000 * b:.1f} ms")
    print(f"fvopt step (adam, fft, default transforms, batch 1): {1000 * o:.1f} ms")
    print(f"ratio fvopt/bare: {o / b:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
