"""GPU benchmark: fvopt's overheads over the bare network, measured in one run, printed as ratios.

On CUDA it prints, each as a `ratio ...` line (medians, the two sides alternated call by call):
  1. one fvopt Adam step (fft, default transforms, batch 1, 224 px) over one bare forward+backward
     of the same network, for lite0 and torchvision resnet50 (random weights), eager and with each
     speed setting (bf16, channels-last, cudnn.benchmark), and the bare pass under the same setting;
  2. 64 channels of one layer in one batched run over 64 sequential runs of the same steps;
  3. one CMA-ES generation (population 40, fft:k=8) over one bare batched forward of 40 images,
     with the time of pycma's host round trip (ask/tell) reported on its own;
  4. peak GPU memory of one tiled dream step at 4096x4096 over the same at 1024x1024 (tile 512).
Targets (H100): 1 <= 1.10 eager; 2 >= 20x; 3 <= 1.10; 4 <= 1.5.

    python benchmarks/gpu.py                  # needs a CUDA GPU; says so and exits 2 otherwise
    python benchmarks/gpu.py --device cpu --quick   # the same code on the CPU at tiny sizes (a smoke test)
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from _timing import interleaved, sync
from fvopt.dream import layers_objective
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import ImageParam, make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.speed import Speed
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms

SETTINGS = {"eager": Speed(), "bf16": Speed(bf16=True), "channels_last": Speed(channels_last=True),
            "cudnn_benchmark": Speed(cudnn_benchmark=True)}


def step_overhead(name: str, device: torch.device, size: int, rounds: int) -> None:
    for label, speed in SETTINGS.items():
        model = load_model(name, weights=None if name == "lite0" else "random", device=device)
        speed.apply_globally()
        problem = Problem(model, parse_target("class:8"), make_param("fft", size), make_transforms("default"),
                          speed=speed)
        strategy = make_strategy("adam")
        strategy.start(problem, problem.init())
        x = speed.input(torch.rand(1, 3, size, size, device=device, requires_grad=True))

        def bare() -> None:
            with speed.autocast(device):
                out = model.net((x - model.mean) / model.std)
            out[0, 8].float().backward()

        b, o = interleaved(bare, lambda: strategy.step(problem), rounds, device)
        print(f"ratio step/bare {name} {label}: {o / b:.3f}  (step {1000 * o:.2f} ms, bare {1000 * b:.2f} ms)")
        torch.backends.cudnn.benchmark = False


def batched_channels(device: torch.device, size: int, steps: int, channels: int) -> None:
    model = load_model("lite0", device=device)

    def once(target: str) -> None:
        problem = Problem(model, parse_target(target), make_param("fft", size), make_transforms("default"))
        run(problem, make_strategy("adam"), Budget(steps=steps))

    sync(device)
    start = time.perf_counter()
    once(f"channel:blocks.4:0-{channels - 1}")
    sync(device)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for c in range(channels):
        once(f"channel:blocks.4:{c}")
    sync(device)
    sequential = time.perf_counter() - start
    print(f"ratio sequential/batched {channels} channels x {steps} steps: {sequential / batched:.1f}  "
          f"(batched {batched:.2f} s, sequential {sequential:.2f} s)")


def population(device: torch.device, size: int, popsize: int, rounds: int) -> None:
    model = load_model("lite0", device=device)
    problem = Problem(model, parse_target("class:8"), make_param("fft:k=8", size), make_transforms("default"),
                      max_batch="auto")
    strategy = make_strategy("cmaes", popsize=popsize)
    strategy.start(problem, problem.init())
    x = torch.rand(popsize, 3, size, size, device=device)

    def bare() -> None:
        with torch.no_grad():
            model.net((x - model.mean) / model.std)

    b, o = interleaved(bare, lambda: strategy.step(problem), rounds, device)
    import numpy as np
    start = time.perf_counter()
    for _ in range(rounds):
        asks = [es.ask() for es in strategy.searches]
        for es, cands in zip(strategy.searches, asks):
            es.tell(cands, list(np.zeros(len(cands))))
    host = (time.perf_counter() - start) / rounds
    print(f"ratio generation/bare forward (population {popsize}, {size} px, chunk {problem.max_batch}): {o / b:.3f}  "
          f"(generation {1000 * o:.2f} ms, bare {1000 * b:.2f} ms, of which pycma ask+tell {1000 * host:.2f} ms)")


def dream_memory(device: torch.device, small: int, large: int, tile: int) -> None:
    if device.type != "cuda":
        print("dream memory: skipped (peak GPU memory needs CUDA)")
        return
    model = load_model("lite0", device=device)
    peaks = {}
    for side in (small, large):
        problem = Problem(model, layers_objective("blocks.3,blocks.4"), ImageParam(torch.rand(1, 3, side, side,
                          device=device)), make_transforms("none"), tile=tile, validated=True)
        z = problem.init()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        problem.value_and_grad(z)
        torch.cuda.synchronize()
        peaks[side] = torch.cuda.max_memory_allocated(device)
        del problem, z
        torch.cuda.empty_cache()
    print(f"ratio dream peak memory {large}/{small} (tile {tile}): {peaks[large] / peaks[small]:.2f}  "
          f"({peaks[large] / 2**20:.0f} MB vs {peaks[small] / 2**20:.0f} MB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few rounds (a smoke test)")
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU on this machine; nothing measured (use --device cpu --quick for a "
              "smoke test of the script)", file=sys.stderr)
        return 2
    q = args.quick
    rounds = 3 if q else args.rounds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}")
    for net in ("lite0", "torchvision:resnet50"):
        step_overhead(net, device, 64 if q else 224, rounds)
    batched_channels(device, 64 if q else 224, 2 if q else 20, 4 if q else 64)
    population(device, 64 if q else 128, 8 if q else 40, rounds)
    dream_memory(device, 256 if q else 1024, 512 if q else 4096, 128 if q else 512)
    return 0


if __name__ == "__main__":
    sys.exit(main())
