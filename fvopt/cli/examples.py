"""`fvopt examples MODEL --target ...`: each unit's top and bottom reference images (fvopt.quality.examples)."""

from __future__ import annotations

from .common import Shared, _positive_int, _side


def add_parser(sub, shared: Shared) -> None:
    ex = sub.add_parser(
        "examples",
        parents=[shared.debug, shared.weights, shared.device, shared.quiet],
        help="dataset examples: each unit's top and bottom reference images (and crops)",
    )
    ex.add_argument("model", help="a model name (fvopt models)")
    ex.add_argument(
        "--target", required=True, help="channel:LAYER:INDICES (e.g. channel:blocks.4:0-63) or class:INDICES"
    )
    ex.add_argument(
        "--reference",
        default="builtin",
        metavar="DIR|builtin",
        help="a folder of JPEG/PNG/WebP images (any depth), or builtin (scikit-image crops; the default)",
    )
    ex.add_argument(
        "--top",
        type=_positive_int,
        default=9,
        help="top and bottom images per unit (default 9); the two lists never share an image, and a --top the "
        "reference cannot fill is refused",
    )
    ex.add_argument(
        "--per-source", type=_positive_int, default=2, help="at most this many examples from one source photo"
    )
    ex.add_argument(
        "--side",
        type=_side,
        default=None,
        help="side the images are shown at (default: the model's input; at least its minimum input)",
    )
    ex.add_argument("--batch", type=_positive_int, default=32, help="images per forward pass")
    ex.add_argument("--out", default="examples", help="output folder (unit-N.png, overview.png, index.json)")
    ex.add_argument("--no-cache", action="store_true", help="neither read nor write the reference cache")


def run(args) -> int:
    from ..quality.examples import dataset_examples, write_examples
    from ..quality.reference import reference_set

    ref = reference_set(args.reference)  # a missing, empty or image-less folder: one line, before the model loads
    from ..models import resolve_device

    examples, stats, ref = dataset_examples(
        args.model,
        args.target,
        ref,
        top=args.top,
        per_source=args.per_source,
        side=args.side,
        batch=args.batch,
        progress=not args.quiet,
        use_cache=not args.no_cache,
        device=resolve_device(args.device),
        weights=args.weights,
    )
    written = write_examples(examples, stats, ref, args.model, args.target, args.out)
    short = [ex for ex in examples if min(len(ex.top), len(ex.bottom)) < args.top]  # unreadable images
    fewer = (
        f", fewer for {len(short)} unit{'s' if len(short) != 1 else ''} (unit {short[0].unit}: {len(short[0].top)} "
        f"top, {len(short[0].bottom)} bottom: every readable image the lists could take)"
        if short
        else ""
    )
    print(
        f"wrote {len(examples)} unit grids, overview.png and index.json to {args.out} ({args.target}, top/bottom "
        f"{args.top}{fewer}; reference: {ref.describe()}; activations from the "
        f"{'cache' if stats.how == 'cache' else 'pass'})"
    )
    return 0 if written else 1
