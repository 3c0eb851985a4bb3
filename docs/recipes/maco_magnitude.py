"""What replacing MaCo's ImageNet spectrum changes: fvopt's stand-in (scikit-image's photos, in the
decorrelated color space) against the plain 1/f amplitude that natural images follow on average.

Prints the stand-in's radial power-law exponent, then runs the MaCo recipe with each magnitude
(same seed, steps, crops and noise) and prints the robust activation and, for the class target,
the class probability under Lite1 (a second network that never saw the optimization).

    python docs/recipes/maco_magnitude.py            # about 6 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import fvopt
from fvopt.evaluate import class_probabilities
from fvopt.models import load_model
from fvopt.params import make_param
from fvopt.params.fourier import rfft2d_freqs

RECIPE = dict(optimizer="torch:NAdam", lr=1.0, render=224, transforms="crops:6@0.25-0.2,noise:0.05,unoise:0.05")


def radial_exponent(magnitude: torch.Tensor) -> float:
    """Slope of log amplitude against log frequency, fitted over every bin but the mean."""
    freqs = rfft2d_freqs(magnitude.shape[-2], 2 * (magnitude.shape[-1] - 1))
    keep = freqs > 0
    amp = magnitude.mean(0).numpy()
    return float(np.polyfit(np.log(freqs[keep]), np.log(amp[keep]), 1)[0])


def one_over_f(size: int) -> torch.Tensor:
    freqs = torch.tensor(rfft2d_freqs(size, size), dtype=torch.float32)
    return (1.0 / freqs.clamp_min(1.0 / size)).expand(3, -1, -1).clone()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--target", default="class:8")
    args = ap.parse_args()
    model, second = load_model("lite0"), load_model("lite1")
    param = make_param("maco", args.size)
    print(f"stand-in magnitude: amplitude ~ f^{radial_exponent(param.magnitude):.2f} (1/f would be f^-1.00)")
    for label, magnitude in (
        ("scikit-image photos (fvopt's stand-in)", param.magnitude.clone()),
        ("plain 1/f", one_over_f(args.size)),
    ):
        param.magnitude.copy_(magnitude)
        vis = fvopt.visualize(model, args.target, param=param, steps=args.steps, size=args.size, seed=0, **RECIPE)
        line = f"{label}: robust {vis.trace['final']['robust_value']:.2f}"
        if args.target.startswith("class:"):
            probs, _ = class_probabilities(second, vis.images)
            line += f", Lite1 p(class) {float(probs[0, int(args.target.split(':')[1])]):.3f}"
        print(line)


if __name__ == "__main__":
    main()
