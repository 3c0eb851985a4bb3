"""`fvopt atlas MODEL --layers ... --out SITE` and `fvopt atlas merge SITE1 SITE2 ... --out SITE`. Values are
checked by fvopt.atlases.atlas and merge (one line, exit 2)."""

from __future__ import annotations

from ..errors import FvoptError
from .common import Shared, _OneLineParser, add_budget_options
from .flags import add_setting_flags


USAGE = (
    "fvopt atlas MODEL --layers L1,L2|all --optimizers adam,cmaes --param fft --size 128 "
    "[--passes N | --forwards N | --seconds S | --steps N] "
    "[--seeds 0,1,2] [--diversity K [--diversity-weight W]] [--reference DIR|builtin|none] --out SITE "
    "[--workers K | --executor dask://HOST:PORT] [--shard k/N] "
    "[--max-batch B] [--units A-B] [--weights FILE] [--device auto|cpu|cuda]   |   "
    "fvopt atlas merge SITE1 SITE2 ... --out SITE"
)


def add_parser(sub, shared: Shared) -> None:
    """`fvopt atlas MODEL ...`, and `fvopt atlas merge ...` routed to its own parser (merge_parser)."""
    at = sub.add_parser(
        "atlas",
        parents=[shared.debug, shared.weights, shared.device, shared.seed, shared.quiet],
        help="every channel of some layers under several optimizers, as an offline site",
        description=USAGE,
        epilog="fvopt atlas merge SITE1 SITE2 ... --out SITE joins sites of one request (fvopt atlas merge -h)",
    )
    at.set_defaults(atlas_command="run")
    at.add_argument("model", help="a model name (fvopt models)")
    at.add_argument("--layers", default=None, help="comma-separated layer names, or all (depth 1-2 layers)")
    at.add_argument("--optimizers", default="adam,cmaes", help="comma-separated optimizers (default adam,cmaes)")
    add_setting_flags(at, "atlas", only=("param", "size", "transforms", "reference", "measures"))
    add_budget_options(
        at,
        "budget of each cell, whichever ends first (default 192 passes: what a first-order optimizer spends in 64 "
        "steps, so that optimizers compare at equal compute; a zero-order step is a whole generation)",
        "atlas",
    )
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
    at.add_argument("--out", required=True, help="the site folder (new, empty, or an atlas of the same settings)")
    at.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    at.add_argument("--executor", default=None, help="dask://HOST:PORT to run batches on a Dask cluster")
    at.add_argument("--shard", default=None, help="k/N: run the k-th of N slices of the units (join with merge)")
    at.add_argument("--max-batch", type=int, default=16, help="units per run (default 16)")
    at.add_argument("--units", default=None, help="A-B: only channels A..B of each layer")
    at.add_argument("--top", type=int, default=6, help="top and bottom dataset examples per unit (default 6)")
    at.route("merge", merge_parser(at.prog, shared))


def merge_parser(prog: str, shared: Shared) -> _OneLineParser:
    """`fvopt atlas merge SITE1 SITE2 ... --out SITE`: its own options, its own --help."""
    parser = _OneLineParser(
        prog=f"{prog} merge",
        parents=[shared.debug, shared.quiet],
        description="join the sites of one request (shards, seeds, optimizers run apart) into one site",
    )
    parser.set_defaults(atlas_command="merge")
    parser.add_argument("sites", nargs="+", metavar="SITE", help="the atlas folders to join (two or more)")
    parser.add_argument("--out", required=True, help="the site folder (new, empty, or an atlas of the same settings)")
    parser.add_argument("--top", type=int, default=6, help="top and bottom dataset examples per unit (default 6)")
    return parser


def run(args) -> int:
    if args.atlas_command == "merge":
        return run_merge(args)
    if args.model == "merge":  # options before the word: `fvopt atlas --quiet merge ...`
        raise FvoptError("merge is a subcommand: fvopt atlas merge SITE1 SITE2 ... --out SITE (options after it)")
    if args.layers is None:
        raise FvoptError("--layers is required: comma-separated layer names (fvopt layers MODEL lists them), or all")
    from ..atlases import atlas

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
        weights=args.weights,
        progress=not args.quiet,
    )
    summary = frame.attrs["summary"]  # its line was printed by atlas()
    print(f"site: {args.out}/index.html")
    if summary.interrupted:
        from ..runtime import signals

        return signals.exit_code()
    return 1 if summary.failed else 0


def run_merge(args) -> int:
    from ..atlases import merge

    frame = merge(args.sites, args.out, top=args.top, progress=not args.quiet)
    done = int((frame["status"] == "done").sum()) if len(frame) else 0
    print(f"merged {len(args.sites)} atlases into '{args.out}': {done} cells done; open {args.out}/index.html")
    return 0
