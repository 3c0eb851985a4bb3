"""What an atlas costs beyond its optimization (issue 20), as ratios measured in one run.

1. Overhead: `fvopt.atlas` over 64 channels of one layer at 128 px (store, judging, dataset examples,
   pages; the reference caches warmed first, as every atlas after the first one finds them) against the
   same 64 channels as one bare batched `visualize` run of the same steps. Target: <= 1.15x.
2. Workers: the same atlas at 64 px with 2 local workers against 1 (two batches of 32 units, so both
   workers have one). Target: <= 0.75x on 2 cores.

    python benchmarks/atlas_overhead.py                               # blocks.3 units 0-63, adam, 64 steps
    python benchmarks/atlas_overhead.py --units 4 --steps 2 --size 64 --skip-workers   # smoke test
    python benchmarks/atlas_overhead.py --skip-overhead --worker-steps 256   # workers only, longer runs

Run it on a quiet machine: the ratios, not the seconds, are the result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fvopt.atlases import atlas  # noqa: E402
from fvopt.models import load_model  # noqa: E402
from fvopt.viz import visualize  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lite0")
    p.add_argument("--layer", default="blocks.3")
    p.add_argument("--units", type=int, default=64, help="channels 0..units-1 of the layer")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--worker-size", type=int, default=64)
    p.add_argument("--reference", default="builtin")
    p.add_argument("--worker-steps", type=int, default=None, help="steps of the workers' comparison (default --steps)")
    p.add_argument("--skip-workers", action="store_true")
    p.add_argument("--skip-overhead", action="store_true")
    args = p.parse_args()
    common = dict(
        steps=args.steps, units=f"0-{args.units - 1}", reference=args.reference, progress=False, log=lambda line: None
    )
    target = f"channel:{args.layer}:0-{args.units - 1}"
    net = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm-up: model, reference caches for the layer and the judge at this size, one tiny run
        atlas(
            args.model,
            args.layer,
            args.optimizer,
            size=args.size,
            out=tmp / "warm",
            **{**common, "steps": 1, "units": "0-1"},
        )
        if not args.skip_overhead:
            overhead(args, net, target, common, tmp)
        if args.skip_workers:
            return
        workers(args, {**common, "steps": args.worker_steps or args.steps}, tmp)


def overhead(args, net, target: str, common: dict, tmp: Path) -> None:
    """1: the atlas against one bare batched run of the same units and steps."""
    bare = timed(
        lambda: visualize(
            net, target, "fft", args.optimizer, steps=args.steps, size=args.size, max_batch=args.units, measures="none"
        )
    )
    full = timed(
        lambda: atlas(
            args.model, args.layer, args.optimizer, size=args.size, out=tmp / "site", max_batch=args.units, **common
        )
    )
    print(
        f"1. atlas of {args.units} channels of {args.model} {args.layer} at {args.size} px, {args.steps} steps "
        f"of {args.optimizer} (measures and examples from the {args.reference} reference): {full:.1f} s; "
        f"one bare batched run: {bare:.1f} s; ratio {full / bare:.2f}x (target <= 1.15x)"
    )


def workers(args, common: dict, tmp: Path) -> None:
    """2: the same atlas at --worker-size with 2 local workers against 1 (two batches, one each)."""
    half = max(1, args.units // 2)
    seconds = {}
    for count in (1, 2):
        seconds[count] = timed(
            lambda: atlas(
                args.model,
                args.layer,
                args.optimizer,
                size=args.worker_size,
                out=tmp / f"w{count}",
                max_batch=half,
                workers=count,
                **common,
            )
        )
    one, two = seconds[1], seconds[2]
    print(
        f"2. the atlas at {args.worker_size} px, {common['steps']} steps, in batches of {half}: "
        f"1 worker {one:.1f} s, 2 workers {two:.1f} s; ratio {two / one:.2f}x (target <= 0.75x on 2 cores)"
    )
    # What the optimization alone allows: 1 worker runs the two batches one after the other on all the cores
    # (torch's threads), 2 workers run them side by side on one core each, so for that part 2 workers take
    # (one batch on 1 thread) / (2 x one batch on all threads). Judging, storing and PNGs, mostly one core of
    # Python in either case, split better across processes.
    net = load_model(args.model)
    target = f"channel:{args.layer}:0-{half - 1}"
    threads = torch.get_num_threads()
    batch = {}
    for count in (threads, 1, threads, 1):  # alternated, the second of each kept
        torch.set_num_threads(count)
        batch[count] = timed(
            lambda: visualize(
                net,
                target,
                "fft",
                args.optimizer,
                steps=common["steps"],
                size=args.worker_size,
                max_batch=half,
                measures="none",
            )
        )
    torch.set_num_threads(threads)
    print(
        f"   one batch of {half} units: {batch[1]:.1f} s on 1 thread, {batch[threads]:.1f} s on {threads}; "
        f"the optimization alone can take at best {batch[1] / (2 * batch[threads]):.2f}x on 2 processes"
    )


if __name__ == "__main__":
    main()
