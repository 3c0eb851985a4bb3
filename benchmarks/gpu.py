"""GPU benchmark: fvopt's overheads over the bare network, measured in one run, printed as ratios.

On CUDA it prints, each as a `ratio ...` line (medians, the two sides alternated call by call):
  1. one fvopt Adam step (fft, default transforms, batch 1, 224 px) over one bare forward+backward
     of the same network, for lite0 and torchvision resnet50 (random weights), eager and with each
     speed setting (bf16, channels-last, cudnn.benchmark, compile, compile with CUDA graphs), and the
     bare pass under the same setting (compiled in the same mode for the compile settings; the
     compilation itself is the warm-up and is not timed);
  2. 64 channels of one layer in one batched run over 64 sequential runs of the same steps;
  3. one CMA-ES generation (population 40, fft:k=8) over one bare batched forward of 40 images,
     with pycma's host round trip reported on its own: ask, one host->device copy of the population,
     one device->host copy of the fitness, tell (and the two copies alone);
  4. peak GPU memory of one tiled dream step at 4096x4096 over the same at 1024x1024 (tile 512).
Targets (H100): 1 <= 1.10 eager; 2 >= 20x; 3 <= 1.10; 4 <= 1.5.

    python benchmarks/gpu.py                  # needs a CUDA GPU; says so and exits 2 otherwise
    python benchmarks/gpu.py --device cpu --quick   # the same code on the CPU at tiny sizes (a smoke test;
                                                    # compiles lite0 only: resnet50 would take minutes more)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch

from _timing import interleaved, sync
from fvopt.runtime.device import to_device
from fvopt.dream import layers_objective
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.params import ImageParam, make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.runtime.speed import Speed
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms

SETTINGS = {
    "eager": Speed(),
    "bf16": Speed(bf16=True),
    "channels_last": Speed(channels_last=True),
    "cudnn_benchmark": Speed(cudnn_benchmark=True),
    "compile": Speed(compile="default"),
    "compile_reduce_overhead": Speed(compile="reduce-overhead"),
}


def bare_forward(model, speed: Speed, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The bare network pass under `speed`: compiled in the same mode as fvopt's for the compile settings."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model.net((x - model.mean) / model.std)

    mode = speed.compile_mode(device)
    if mode is None:
        return forward
    compiled = torch.compile(forward, mode=mode, fullgraph=True)

    def run_compiled(x: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda" and mode != "default":
            torch.compiler.cudagraph_mark_step_begin()  # a new CUDA graph replay, as fvopt's pass does
        return compiled(x)

    return run_compiled


def step_overhead(name: str, device: torch.device, size: int, rounds: int, settings: dict[str, Speed]) -> None:
    for label, speed in settings.items():
        if speed.compile == "reduce-overhead" and device.type != "cuda":
            print(f"ratio step/bare {name} {label}: skipped (CUDA graphs need CUDA; elsewhere it is 'compile')")
            continue
        model = load_model(name, weights=None if name == "lite0" else "random", device=device)
        speed.apply_globally()
        problem = Problem(
            model, parse_target("class:8"), make_param("fft", size), make_transforms("default"), speed=speed
        )
        strategy = make_strategy("adam")
        strategy.start(problem, problem.init())
        x = speed.input(torch.rand(1, 3, size, size, device=device, requires_grad=True))
        forward = bare_forward(model, speed, device)

        def bare() -> None:
            with speed.autocast(device):
                out = forward(x)
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
    print(
        f"ratio sequential/batched {channels} channels x {steps} steps: {sequential / batched:.1f}  "
        f"(batched {batched:.2f} s, sequential {sequential:.2f} s)"
    )


def population(device: torch.device, size: int, popsize: int, rounds: int) -> None:
    model = load_model("lite0", device=device)
    problem = Problem(
        model, parse_target("class:8"), make_param("fft:k=8", size), make_transforms("default"), max_batch="auto"
    )
    strategy = make_strategy("cmaes", popsize=popsize)
    strategy.start(problem, problem.init())
    x = torch.rand(popsize, 3, size, size, device=device)

    def bare() -> None:
        with torch.no_grad():
            model.net((x - model.mean) / model.std)

    b, o = interleaved(bare, lambda: strategy.step(problem), rounds, device)
    host, copies = host_round_trip(strategy, device, rounds)
    print(
        f"ratio generation/bare forward (population {popsize}, {size} px, chunk {problem.max_batch}): {o / b:.3f}  "
        f"(generation {1000 * o:.2f} ms, bare {1000 * b:.2f} ms, of which the host round trip {1000 * host:.2f} ms: "
        f"pycma ask+tell and the two copies, the copies alone {1000 * copies:.2f} ms)"
    )


def host_round_trip(strategy, device: torch.device, rounds: int) -> tuple[float, float]:
    """Median seconds of what a CMA-ES generation spends off the network, through the strategy's own
    code: ask + one copy of the population to the device, then one copy of a (P, B) fitness vector
    back + tell; and of the two copies alone (the same sizes, nothing else)."""
    trips, copies = [], []
    values = torch.zeros(strategy.popsize, len(strategy.searches), device=device)  # stands in for the network's
    for _ in range(rounds + 3):
        sync(device)
        start = time.perf_counter()
        asked, Z = strategy.ask_population(device)
        strategy.tell_population(asked, values)
        trips.append(time.perf_counter() - start)
        host = Z.cpu().numpy()  # the same population back on the host, to time its copy alone
        sync(device)
        start = time.perf_counter()
        to_device(host, device)
        values.to("cpu", torch.float64)  # waits for the copy in (same stream), then copies the fitness out
        copies.append(time.perf_counter() - start)
    return statistics.median(trips[3:]), statistics.median(copies[3:])


def dream_memory(device: torch.device, small: int, large: int, tile: int) -> None:
    if device.type != "cuda":
        print("dream memory: skipped (peak GPU memory needs CUDA)")
        return
    model = load_model("lite0", device=device)
    peaks = {}
    for side in (small, large):
        problem = Problem(
            model,
            layers_objective("blocks.3,blocks.4"),
            ImageParam(torch.rand(1, 3, side, side, device=device)),
            make_transforms("none"),
            tile=tile,
            validated=True,
        )
        z = problem.init()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        problem.value_and_grad(z)
        torch.cuda.synchronize()
        peaks[side] = torch.cuda.max_memory_allocated(device)
        del problem, z
        torch.cuda.empty_cache()
    print(
        f"ratio dream peak memory {large}/{small} (tile {tile}): {peaks[large] / peaks[small]:.2f}  "
        f"({peaks[large] / 2**20:.0f} MB vs {peaks[small] / 2**20:.0f} MB)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few rounds (a smoke test)")
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py: no CUDA GPU on this machine; nothing measured (use --device cpu --quick for a "
            "smoke test of the script)",
            file=sys.stderr,
        )
        return 2
    q = args.quick
    rounds = 3 if q else args.rounds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}")
    for net in ("lite0", "torchvision:resnet50"):
        # on a CPU smoke test, compiling resnet50 twice (fvopt's pass and the bare one) takes minutes
        settings = SETTINGS if not q or net == "lite0" else {k: v for k, v in SETTINGS.items() if v.compile == "off"}
        step_overhead(net, device, 64 if q else 224, rounds, settings)
    batched_channels(device, 64 if q else 224, 2 if q else 20, 4 if q else 64)
    population(device, 64 if q else 128, 8 if q else 40, rounds)
    dream_memory(device, 256 if q else 1024, 512 if q else 4096, 128 if q else 512)
    return 0


if __name__ == "__main__":
    sys.exit(main())
