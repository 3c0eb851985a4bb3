"""`fvopt dream [IMAGE]`: multi-octave DeepDream on a photo (fvopt.dream), and its endless zoom."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FvoptError
from ..config import setting
from .flags import add_flag
from .common import (
    Shared,
    _above_one,
    _add_input_options,
    _nonnegative_int,
    _positive_float,
    _positive_int,
    _preprocessing,
    _side,
    _stopped,
)


def add_parser(sub, shared: Shared) -> None:
    dr = sub.add_parser(
        "dream",
        parents=[shared.debug, shared.model, shared.weights, shared.device, shared.seed, shared.quiet],
        help="multi-octave DeepDream on a photo, at any size",
    )
    dr.add_argument("image", nargs="?", default=None, help="a photo (default: scikit-image's chelsea)")
    dr.add_argument(
        "--size",
        type=_side,
        default=None,
        metavar="N",
        help="the output's longer side in px: the photo is resized to it with antialiasing (default: its own size)",
    )
    _add_input_options(dr, "dream")
    dr.add_argument(
        "--layers", default="blocks.3,blocks.4", help="comma-separated layers (mean of squared activations)"
    )
    dr.add_argument(
        "--target",
        default=None,
        help="any target instead of the layers, e.g. channel:blocks.4:10 or layer:blocks.3+0.5*layer:blocks.4",
    )
    dr.add_argument(
        "--scheme",
        type=_dream_scheme,
        default=None,
        help="a published recipe whose constants fill the "
        "flags below that are not given: 2015 (Mordvintsev's notebook, the default), tf2 (the TensorFlow 2 "
        "tutorial), matlab (deepDreamImage); constants in fvopt.dream.SCHEMES",
    )
    dr.add_argument("--octaves", type=_positive_int, default=None, help="number of octaves (default: the scheme's)")
    dr.add_argument(
        "--octaves-above",
        type=_nonnegative_int,
        default=None,
        help="how many of the octaves are larger than the photo (tf2, matlab: 2; the result has the photo's size)",
    )
    dr.add_argument("--octave-scale", type=_above_one, default=None)
    dr.add_argument("--steps", type=_positive_int, default=None, help="steps per octave")
    dr.add_argument("--lr", type=_positive_float, default=None, help="step size: z += lr * g / mean|g| (tf2: / std(g))")
    dr.add_argument(
        "--tile", type=_side, default=None, help="tile size in px for the gradient (matlab: the network's input)"
    )
    dr.add_argument(
        "--lapnorm-levels",
        type=_positive_int,
        default=None,
        help="levels of the scheme's Laplacian normalization (only schemes that have one: matlab)",
    )
    add_flag(dr, setting("grad"), "dream")
    dr.add_argument("--out", default="dream.png")
    dr.add_argument("--trace", default=None, help="write the dream's settings, stop reason and steps as JSON here")
    dr.add_argument("--octave-images", default=None, help="folder for the image after each octave")
    dr.add_argument(
        "--zoom-frames", type=_positive_int, default=None, help="make an endless-zoom animation of N frames"
    )
    dr.add_argument("--zoom", type=_above_one, default=1.05, help="zoom per frame (above 1)")
    dr.add_argument("--zoom-octaves", type=_positive_int, default=1, help="octaves dreamed on each zoom frame")


def _dream_scheme(text: str) -> str:
    """--scheme NAME, checked by the same function as fvopt.dream.dream(scheme=...)."""
    from ..dream import get_scheme

    try:
        return get_scheme(text).name
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args) -> int:
    from ..dream import (
        DEFAULT_SCHEME,
        check_dream_fits,
        dream,
        longer_side_size,
        resolve_scheme,
        scheme_for_model,
        scheme_octave_sizes,
    )
    from ..io.images import (
        check_distinct,
        check_folder_writable,
        check_image_path,
        check_writable,
        image_size,
        load_image,
        save_images,
    )
    from ..models import load_model, resolve_device

    if args.zoom_frames:
        check_writable(args.out, "--out")
    else:
        check_image_path(args.out, "--out")
    check_folder_writable(args.octave_images, "--octave-images folder")
    check_distinct(out=args.out, trace=args.trace)
    check_writable(args.trace, "--trace")
    scheme = resolve_scheme(
        args.scheme or DEFAULT_SCHEME,
        octaves=args.octaves,
        octaves_above=args.octaves_above,
        octave_scale=args.octave_scale,
        steps=args.steps,
        lr=args.lr,
        tile=args.tile,
        lapnorm_levels=args.lapnorm_levels,
    )  # a flag the scheme lacks: refused before the model loads
    npy = bool(args.image) and str(args.image).lower().endswith(".npy")
    size = image_size(args.image) if args.image and not npy else None  # header only: refuse a huge photo first
    model = load_model(args.model, weights=args.weights, device=resolve_device(args.device), **_preprocessing(args))
    scheme = scheme_for_model(scheme, model)
    if size:
        height, width = size[1], size[0]
        if args.size:  # the dream runs at the resized photo's size: that is what must fit
            height, width = longer_side_size(height, width, args.size)
        check_dream_fits(model, *scheme_octave_sizes(height, width, scheme, model.min_size)[-1], scheme.tile)
    image = load_image(args.image, model.channels) if args.image else None
    settings = dict(
        model=model,
        layers=args.layers,
        target=args.target,
        grad=args.grad,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    on_octave = None
    if args.octave_images:
        folder = Path(args.octave_images)
        on_octave = lambda i, img: save_images(img.cpu(), folder / f"octave_{i + 1}.png")  # noqa: E731
    result = dream(image, on_octave=on_octave, scheme=scheme, size=args.size, **settings)
    if args.zoom_frames and not result.interrupted:
        return _dream_zoom(args, result, scheme, settings)
    out = save_images(result.image, args.out)
    h, w = result.image.shape[-2:]
    print(
        f"wrote {out}: {w}x{h} px, {scheme.describe()}; {result.forwards} forwards, "
        f"{result.backwards} backwards, {result.seconds:.1f} s"
    )
    if args.trace:
        _write_dream_trace(args.trace, result, out)
    if result.interrupted:
        from ..runtime.signals import exit_code

        print(
            f"fvopt: {_stopped()} after {len(result.trace)} steps: kept the dream so far in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''}",
            file=sys.stderr,
        )
        return exit_code()
    from ..run import BUDGET_STOPS

    if result.stop_reason not in BUDGET_STOPS:  # a NaN stopped the run loop: the best image before it was kept
        print(f"note: {result.stop_reason}", file=sys.stderr)
    return 0


def _dream_zoom(args, result, scheme, settings: dict) -> int:
    """The endless zoom after the first dream: frames kept as they finish; a stop (even one that lands
    while the GIF is written) keeps every finished frame, writes the trace, and exits 128 + signal."""
    from ..dream import dream, resolve_scheme, zoom_frames
    from ..runtime.signals import exit_code

    frame_scheme = resolve_scheme(scheme, octaves=args.zoom_octaves)
    counts = {"forwards": 0, "backwards": 0}

    def dream_frame(frame):
        frame_result = dream(frame, scheme=frame_scheme, **settings)
        counts["forwards"] += frame_result.forwards
        counts["backwards"] += frame_result.backwards
        if frame_result.interrupted:
            raise KeyboardInterrupt  # this frame is not finished: the frames before it are kept
        return frame_result.image

    frames = [result.image]
    interrupted = False
    try:
        zoom_frames(result.image, args.zoom_frames, args.zoom, dream_frame, progress=not args.quiet, into=frames)
    except KeyboardInterrupt:
        interrupted = True
    written, stopped_while_writing = _save_animation_kept(frames, args.out)
    interrupted = interrupted or stopped_while_writing
    result.settings["zoom"] = {
        "frames_asked": args.zoom_frames,
        "frames_written": len(frames),
        "zoom": args.zoom,
        "octaves_per_frame": args.zoom_octaves,
        "frame_forwards": counts["forwards"],
        "frame_backwards": counts["backwards"],
        "stopped": _stopped() if interrupted else None,
    }
    print(f"wrote {', '.join(map(str, written))}: {len(frames)} frames, zoom {args.zoom} per frame")
    if args.trace:
        _write_dream_trace(args.trace, result, written[0])
    if interrupted:
        print(
            f"fvopt: {_stopped()}: kept the {len(frames)} finished frames of {args.zoom_frames} in "
            f"{', '.join(map(str, written))}{f' and the trace in {args.trace}' if args.trace else ''}",
            file=sys.stderr,
        )
        return exit_code()
    return 0


def _save_animation_kept(frames: list, out: str) -> tuple[list[Path], bool]:
    """save_animation, written again if a stop lands mid-write (the atomic write dropped the half file):
    the signal handler raises only on the first stop signal, so the second write finishes."""
    from ..dream import save_animation

    try:
        return save_animation(frames, out), False
    except KeyboardInterrupt:
        return save_animation(frames, out), True


def _write_dream_trace(path: str, result, out) -> None:
    """The dream's settings, stop reason, counts and per-step rows as strict JSON (written atomically)."""
    from ..io.trace import write_trace

    trace = {
        "image": str(out),
        "stop_reason": result.stop_reason,
        "forwards": result.forwards,
        "backwards": result.backwards,
        "seconds": result.seconds,
        "settings": result.settings,
        "steps": result.trace,
    }
    write_trace(path, trace)
