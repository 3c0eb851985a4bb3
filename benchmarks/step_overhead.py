"""Ratio of one fvopt optimization step to one bare forward+backward of the same model.

fvopt step: `strategy.step(problem)` for Adam on the fft parameterization with the default
transforms, batch 1, 224 px, target class:8 (the whole network runs): render the image,
transform it, forward, backward through all of it, Adam update, bookkeeping. Bare: lite0's
network on a 224 px input that requires grad, forward, backward of one logit. The two alternate
step by step in one run (medians), so machine load hits both alike. Target: at most 1.15 on CPU.

    python benchmarks/step_overhead.py [--device cpu] [--rounds 30] [--transforms default|lucent|none]
"""

from __future__ import annotations

import argparse

import torch

from _timing import interleaved
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Problem
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--target", default="class:8")
    ap.add_argument("--transforms", default="default")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_model("lite0", device=device)
    problem = Problem(model, parse_target(args.target), make_param("fft", args.size), make_transforms(args.transforms))
    strategy = make_strategy("adam")
    strategy.start(problem, problem.init())
    x = torch.rand(1, 3, args.size, args.size, device=device, requires_grad=True)

    def bare() -> None:
        model.net((x - model.mean) / model.std)[0, 8].backward()

    def ours() -> None:
        strategy.step(problem)

    z = problem.init().requires_grad_(True)
    generator = torch.Generator().manual_seed(0)

    def rendered() -> None:  # the same image pipeline without fvopt's problem, strategy and bookkeeping
        images = problem.transforms.apply(problem.param(z), problem.transforms.sample(generator))
        model.net((images - model.mean) / model.std)[0, 8].backward()

    b, o = interleaved(bare, ours, args.rounds, device)
    b2, r = interleaved(bare, rendered, args.rounds, device)
    print(
        f"device {device}, threads {torch.get_num_threads()}, size {args.size}, target {args.target}, "
        f"transforms {args.transforms}"
    )
    print(f"bare forward+backward: {1000 * b:.1f} ms")
    print(f"fvopt step (adam, fft, batch 1): {1000 * o:.1f} ms")
    print(f"  of which the image pipeline alone (fft + transforms + network, no fvopt): {r / b2:.3f} x bare")
    print(f"ratio fvopt/bare: {o / b:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
