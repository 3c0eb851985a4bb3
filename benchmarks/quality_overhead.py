"""What the quality measures cost (issue 21), as ratios measured in one run.

1. Reference pass rate: images per second of `fvopt.quality.reference_pass` (decode, eval
   transform, one forward, per-unit summaries; no cache) against a bare batched forward of the same
   network over the same images already decoded in memory. Target: >= 0.8x.
2. Judging a final image with every measure that applies, once the reference caches exist, as a
   share of a 10 s bench cell. Target: <= 5%.

    python benchmarks/quality_overhead.py                       # a made-up folder of 256 images
    python benchmarks/quality_overhead.py --reference ~/imagenet/val --images 2000
    python benchmarks/quality_overhead.py --images 16 --side 64 --repeats 1   # smoke test

Run it on a quiet machine: the ratios, not the seconds, are the result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fvopt.models import load_model  # noqa: E402
from fvopt.quality import FEATURES, judge, reference_pass  # noqa: E402
from fvopt.quality.reference import FolderReference  # noqa: E402
from fvopt.quality.synthetic import make_folder  # noqa: E402

CELL_SECONDS = 10.0


class _First(FolderReference):
    """The first `n` files of a folder (a benchmark need not read 50,000 images)."""

    def __init__(self, root, n: int) -> None:
        super().__init__(root)
        self.files, self.sources = self.files[:n], self.sources[:n]
        self._fingerprint += f"-first{n}"
        if self.labels is not None:
            self.labels = self.labels[:n]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lite0")
    p.add_argument("--reference", default=None, help="a folder (default: a made-up folder of --images images)")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--side", type=int, default=None, help="side the images are shown at (default: the model's)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.reference or make_folder(Path(tmp) / "images", n=args.images)
        ref = _First(root, args.images)
        model = load_model(args.model, device=args.device)
        side = args.side or model.input_size
        print(
            f"model {args.model} at {side} px, {len(ref)} images; reference: {ref.describe()}; "
            f"torch threads {torch.get_num_threads()}"
        )

        # 1. reference pass (no cache) vs bare batched forward over the same decoded images
        images = ref.load(range(len(ref)), side)

        def bare():
            with torch.no_grad():
                for i in range(0, len(images), args.batch):
                    model(images[i : i + args.batch].to(model.device))

        def streamed():
            reference_pass(model, ref, [FEATURES], side=side, batch=args.batch, progress=False, use_cache=False)

        bare()  # warm-up
        t_bare, t_pass = [], []
        for _ in range(args.repeats):
            for f, out in ((bare, t_bare), (streamed, t_pass)):
                start = time.perf_counter()
                f()
                out.append(time.perf_counter() - start)
        rate_bare = len(ref) / statistics.median(t_bare)
        rate_pass = len(ref) / statistics.median(t_pass)
        print(
            f"bare batched forward {rate_bare:.1f} img/s; reference pass {rate_pass:.1f} img/s; "
            f"ratio {rate_pass / rate_bare:.2f}x (target >= 0.8x)"
        )

        # 2. judging one final image with every measure, caches built, networks loaded once (as a bench does)
        cache = Path(tmp) / "cache"
        judge_net = load_model("lite1" if args.model == "lite0" else "lite0", device=args.device)
        others = [load_model(n, device=args.device) for n in ("lite0", "lite1") if n != args.model]
        image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        from fvopt.evaluate import score_images
        from fvopt.objectives import parse_target

        for target in ("channel:blocks.5:3", "class:8"):
            # a bench cell has the evaluator's robust value already (a target without regularizer terms)
            robust = score_images(model, parse_target(target), image)["robust_value"]

            def score():
                return judge(
                    image,
                    target,
                    model,
                    judge=judge_net,
                    transfer=others,
                    reference=ref,
                    side=side,
                    cache_folder=cache,
                    robust=robust,
                )

            row = score()  # builds the caches (not timed)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                score()
                times.append(time.perf_counter() - start)
            t = statistics.median(times)
            print(
                f"judge {target} ({', '.join(row['measures'])}): {t:.2f} s = {100 * t / CELL_SECONDS:.1f}% of a "
                f"{CELL_SECONDS:.0f} s cell (target <= 5%)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
