"""The `fvopt atlas` command line: `fvopt atlas MODEL --layers ... --out SITE` and
`fvopt atlas merge SITE1 SITE2 ... --out SITE`. Values are checked by fvopt.atlases.atlas (one line, exit 2)."""

from __future__ import annotations


USAGE = (
    "fvopt atlas MODEL --layers L1,L2|all --optimizers adam,cmaes --param fft --size 128 "
    "[--passes N | --forwards N | --seconds S | --steps N] "
    "[--seeds 0,1,2] [--diversity K [--diversity-weight W]] [--reference DIR|builtin|none] --out SITE "
    "[--workers K | --executor dask://HOST:PORT] [--shard k/N] "
    "[--max-batch B] [--units A-B] [--device auto|cpu|cuda]   |   fvopt atlas merge SITE1 SITE2 ... --out SITE"
)


def add_atlas_parser(sub, add_budget_options) -> None:
    """`add_budget_options`: fvopt.cli's (--steps, --seconds, --forwards, --passes as `viz` has them), handed in so
    that this module does not import the command line's."""
    at = sub.add_parser(
        "atlas", help="every channel of some layers under several optimizers, as an offline site", description=USAGE
    )
    at.add_argument("model", help="a model name (fvopt models), or the word 'merge'")
    at.add_argument("sites", nargs="*", help="with 'merge': the atlas folders to join")
    at.add_argument("--layers", default=None, help="comma-separated layer names, or all (depth 1-2 layers)")
    at.add_argument("--optimizers", default="adam,cmaes", help="comma-separated optimizers (default adam,cmaes)")
    at.add_argument("--param", default="fft", help="parameterization (default fft; zero-order searches fft:k=8)")
    at.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    add_budget_options(
        at,
        "budget of each cell, whichever ends first (default 192 passes: what a first-order optimizer spends in 64 "
        "steps, so that optimizers compare at equal compute; a zero-order step is a whole generation)",
    )
    at.add_argument("--seed", type=int, default=0, help="one seed (default 0); --seeds gives several")
    at.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds: each unit under each optimizer and seed (the layer grids show the first)",
    )
    at.add_argument(
        "--diversity",
        default="0",
        metavar="K",
        help="each unit's diversity set: K >= 2 images optimized "
        "together with the diversity term subtracted (default 0: none)",
    )
    at.add_argument(
        "--diversity-weight",
        default="1",
        metavar="W",
        help="the weight w > 0 of each diversity set's '- w*diversity:LAYER' (default 1; with --diversity)",
    )
    at.add_argument(
        "--reference",
        default="builtin",
        metavar="DIR|builtin|none",
        help="reference images for dataset examples and measures (default: the built-in stand-in); none: no "
        "reference (a folder named none: ./none)",
    )
    at.add_argument(
        "--measures",
        default="default",
        help="quality measures, checked before work (default: the per-unit ones that apply; none: no measure)",
    )
    at.add_argument("--transforms", default="default")
    at.add_argument("--out", required=True, help="the site folder (new, empty, or an atlas of the same settings)")
    at.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    at.add_argument("--executor", default=None, help="dask://HOST:PORT to run batches on a Dask cluster")
    at.add_argument("--shard", default=None, help="k/N: run the k-th of N slices of the units (join with merge)")
    at.add_argument("--max-batch", type=int, default=16, help="units per run (default 16)")
    at.add_argument("--units", default=None, help="A-B: only channels A..B of each layer")
    at.add_argument("--top", type=int, default=6, help="top and bottom dataset examples per unit (default 6)")
    at.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N")
    at.add_argument("--quiet", action="store_true")


def run_atlas_command(args) -> int:
    from ..errors import FvoptError
    from .api import atlas, merge

    if args.model == "merge":
        frame = merge(args.sites, args.out, top=args.top, progress=not args.quiet)
        done = int((frame["status"] == "done").sum()) if len(frame) else 0
        print(f"merged {len(args.sites)} atlases into '{args.out}': {done} cells done; open {args.out}/index.html")
        return 0
    if args.sites:
        raise FvoptError(
            f"unexpected arguments {' '.join(args.sites)!r}: fvopt atlas takes one model (or 'merge SITE1 SITE2 ...')"
        )
    if args.layers is None:
        raise FvoptError("--layers is required: comma-separated layer names (fvopt layers MODEL lists them), or all")
    frame = atlas(
        args.model,
        args.layers,
        args.optimizers,
        param=args.param,
        size=args.size,
        steps=args.steps,
        passes=args.passes,
        forwards=args.forwards,
        seconds=args.seconds,
        seed=args.seed,
        seeds=args.seeds,
        diversity=args.diversity,
        diversity_weight=args.diversity_weight,
        reference=args.reference,
        out=args.out,
        workers=args.workers,
        executor=args.executor,
        shard=args.shard,
        max_batch=args.max_batch,
        units=args.units,
        transforms=args.transforms,
        measures=args.measures,
        top=args.top,
        device=args.device,
        progress=not args.quiet,
    )
    summary = frame.attrs["summary"]  # its line was printed by atlas()
    print(f"site: {args.out}/index.html")
    if summary.interrupted:
        from .. import signals

        return signals.exit_code()
    return 1 if summary.failed else 0
