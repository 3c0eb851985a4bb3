"""Peak memory of one tiled DeepDream step at 2048x2048 over the same step at 512x512 (tile 256).

Each size runs in a fresh process: load lite0, make the image, then take one tiled dream step
(layers blocks.3 + blocks.4, random roll, tile 256) and read the peak resident memory. Printed:
the peak of each process, the memory the step added over what the process held before it (the
model and the image already allocated), and their ratios. Target: at most 1.5 for the peak.
Also runs a whole 2048x2048 dream (4 octaves x 10 steps, tile 256) with --full.

    python benchmarks/dream_memory.py [--tile 256] [--full]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(size: int, tile: int) -> None:
    import torch

    from fvopt.dream import layers_objective
    from fvopt.models import load_model
    from fvopt.params import ImageParam
    from fvopt.problem import Problem
    from fvopt.transforms import make_transforms

    torch.set_num_threads(2)
    model = load_model("lite0")
    image = torch.rand(1, 3, size, size)
    problem = Problem(
        model,
        layers_objective("blocks.3,blocks.4"),
        ImageParam(image),
        make_transforms("none"),
        tile=tile,
        validated=True,
    )
    z = problem.init()
    before = rss_mb()
    start = time.perf_counter()
    _, g = problem.value_and_grad(z)
    z = (z + 0.01 * g / g.abs().mean()).clamp_(0, 1)
    print(
        json.dumps(
            {
                "size": size,
                "before_mb": before,
                "peak_mb": rss_mb(),
                "seconds": time.perf_counter() - start,
                "tiles": problem.meter.forwards,
            }
        )
    )


def full_dream(tile: int) -> None:
    import torch

    from fvopt.dream import dream

    torch.set_num_threads(2)
    start = time.perf_counter()
    result = dream(torch.rand(1, 3, 2048, 2048), tile=tile, progress=True)
    print(
        f"2048x2048 dream, 4 octaves x 10 steps, tile {tile}: {time.perf_counter() - start:.0f} s, "
        f"{result.forwards} tile passes, peak memory {rss_mb():.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help="also run a whole 2048x2048 dream")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tile)
        return
    rows = {}
    for size in (512, 2048):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--tile", str(args.tile)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows[size] = json.loads(out.strip().splitlines()[-1])
    small, large = rows[512], rows[2048]
    for r in (small, large):
        print(
            f"{r['size']}x{r['size']}: {r['tiles']} tiles, step {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB, "
            f"added by the step {r['peak_mb'] - r['before_mb']:.0f} MB"
        )
    image_mb = 3 * 2048 * 2048 * 4 / 2**20
    print(f"one 2048x2048 float image is {image_mb:.0f} MB")
    print(f"ratio of peak memory 2048/512: {large['peak_mb'] / small['peak_mb']:.3f}  (target <= 1.5)")
    print(
        f"ratio of memory added by the step 2048/512: "
        f"{(large['peak_mb'] - large['before_mb']) / max(1.0, small['peak_mb'] - small['before_mb']):.3f}"
    )
    if args.full:
        full_dream(args.tile)


if __name__ == "__main__":
    main()
