"""The `fvopt` command line: parse, call the library, print. No logic Python users cannot reach."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from .errors import FvoptError
from .options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, SEED, Option, merge_options


def _typed(option: Option):
    """An argparse type from an Option: the same checks (type, range, finiteness) as the Python API."""

    def parse(text: str):
        try:
            return option.coerce("value", text)
        except FvoptError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: must be {option.allowed()}") from None

    return parse


_positive_int = _typed(POSITIVE_INT)
_positive_float = _typed(POSITIVE_FLOAT)
_seed = _typed(SEED)
_side = _typed(IMAGE_SIDE)
_above_one = _typed(Option(float, low=1, low_open=True, high=100))
_nonnegative_int = _typed(Option(int, low=0))


def add_budget_options(parser, title: str) -> None:
    """--steps, --seconds, --forwards, --passes as one argument group, typed by fvopt.problem.BUDGET_OPTIONS: the
    one definition `viz` and `atlas` share."""
    from .problem import BUDGET_OPTIONS

    group = parser.add_argument_group(title)
    for name in ("steps", "seconds", "forwards", "passes"):
        group.add_argument(
            f"--{name}",
            type=_typed(BUDGET_OPTIONS[name]),
            default=None,
            help="model passes: a backward counts as two" if name == "passes" else None,
        )


def _size(text: str):
    """--size N or HEIGHTxWIDTH, checked by the same function as the Python API (fvopt.canvas)."""
    from .canvas import parse_size

    try:
        return parse_size(text, "size")
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _input_size(text: str):
    from .canvas import parse_size

    try:
        return parse_size(text, "input size")
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _value_range(text: str) -> tuple[float, float]:
    from .models.user import parse_range

    try:
        return parse_range(text)
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """What a user's network expects (fvopt.wrap's arguments); they override a named model's own."""
    group = parser.add_argument_group("the network's input (your own model; overrides a named model's)")
    group.add_argument(
        "--channels",
        type=_typed(Option(int, low=1, high=4096)),
        default=None,
        help="channels the network takes (default: read from its first layer; 1 = grayscale)",
    )
    group.add_argument(
        "--mean",
        default=None,
        help="per-channel mean: one number, C comma-separated, or imagenet (default for your own model: 0)",
    )
    group.add_argument("--std", default=None, help="per-channel std, as --mean (default for your own model: 1)")
    group.add_argument(
        "--input-size",
        type=_input_size,
        default=None,
        metavar="N|HxW",
        help="the network's input size (default 224; the default image size)",
    )
    group.add_argument(
        "--value-range",
        type=_value_range,
        default=None,
        metavar="LO,HI",
        help="the range of the network's training inputs, e.g. 0,255 (default 0,1)",
    )


def _preprocessing(args) -> dict:
    return {
        k: getattr(args, k)
        for k in ("mean", "std", "input_size", "channels", "value_range")
        if getattr(args, k, None) is not None
    }


def _dream_scheme(text: str) -> str:
    """--scheme NAME, checked by the same function as fvopt.dream.dream(scheme=...)."""
    from .dream import get_scheme

    try:
        return get_scheme(text).name
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _max_batch(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: must be {POSITIVE_INT.allowed()} or 'auto'"
        ) from None


def _compile_mode(text: str) -> str:
    """--compile MODE, checked by the same function as fvopt.speed.Speed(compile=...)."""
    from .speed import check_compile_mode

    try:
        return check_compile_mode(text)
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _option(text: str) -> tuple[str, str]:
    """KEY=VALUE, kept as text: the strategy's declared option types convert and check it."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' must be KEY=VALUE")
    return key.strip().replace("-", "_"), value


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), naming the bad value; the full usage stays in --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


class Shared:
    """Options repeated across commands, each defined once as an argparse parent parser: a command
    lists the groups it takes (`parents=[...]`), so the same flag has the same type, default and help
    everywhere."""

    def __init__(self) -> None:
        self.debug = self._parent()
        self.debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        self.model = self._parent()
        self.model.add_argument(
            "--model",
            default="lite0",
            help="a name (fvopt models), your network as "
            "FILE.py:FACTORY (a function returning a torch.nn.Module), a torch.export program "
            "(.pt2), or a TorchScript file (class targets only)",
        )
        self.weights = self._parent()
        self.weights.add_argument(
            "--weights", default=None, help="local weight file (loaded with weights_only=True), or 'random'"
        )
        self.device = self._parent()
        self.device.add_argument(
            "--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N, mps"
        )
        self.seed = self._parent()
        self.seed.add_argument("--seed", type=_seed, default=0, help="random seed: the same seed, the same result")
        self.quiet = self._parent()
        self.quiet.add_argument("--quiet", action="store_true", help="no progress bar")

    @staticmethod
    def _parent() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _OneLineParser(
        prog="fvopt",
        description="Feature visualization: compare optimizers and image parameterizations under one budget.",
    )
    p.add_argument("--version", action="version", version=f"fvopt {__version__}")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    shared = Shared()
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("models", parents=[shared.debug], help="list the models that load by name")
    sub.add_parser("optimizers", parents=[shared.debug], help="list the optimizers (strategies) by name")
    sub.add_parser(
        "plugins",
        parents=[shared.debug],
        help="list installed plugin packages and what each adds (or why it failed to load)",
    )

    lay = sub.add_parser(
        "layers", parents=[shared.debug, shared.weights], help="list a model's layers with their output shapes"
    )
    lay.add_argument("model", help="a name (fvopt models), FILE.py:FACTORY, PROGRAM.pt2, or a TorchScript file")
    lay.add_argument("--size", type=_size, default=None, help="input size in px, N or HxW (default: the model's)")
    lay.add_argument("--all", action="store_true", help="also list the layers whose output cannot be read, with why")
    _add_input_options(lay)

    viz = sub.add_parser(
        "viz",
        parents=[shared.debug, shared.model, shared.weights, shared.device, shared.seed, shared.quiet],
        help="optimize an image until a target fires",
    )
    viz.add_argument(
        "--target",
        default="class:8",
        help="e.g. class:8, channel:blocks.4:10, channel:blocks.4:0-63, "
        "neuron:blocks.4:10:3:3, layer:blocks.4, sums like channel:blocks.4:10+0.5*channel:blocks.5:3",
    )
    viz.add_argument(
        "--param",
        default=None,
        help="pixel, raw, fft, pyramid, maco, or low-dimensional forms like fft:k=8 "
        "(default: fft; fft:k=8 for zero-order optimizers)",
    )
    viz.add_argument("--optimizer", default="adam", help="see `fvopt optimizers`; ng:<Name>; hybrid:A>B")
    viz.add_argument("--lr", type=_positive_float, default=None)
    viz.add_argument("--popsize", type=_positive_int, default=None, help="population size of zero-order optimizers")
    viz.add_argument("--sigma", type=_positive_float, default=None, help="initial step size of zero-order optimizers")
    viz.add_argument(
        "--switch",
        type=_typed(Option(float, low=0, high=1, low_open=True, high_open=True)),
        default=None,
        help="share of the budget for the first part of a hybrid",
    )
    viz.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other optimizer option, e.g. --option nesterov=true --option max_iter=10",
    )
    viz.add_argument("--grad", default=None, help="image-gradient processing, e.g. lapnorm or lapnorm:levels=4")
    viz.add_argument(
        "--transforms",
        default="default",
        type=_transforms,
        help="a named set (default: Lucent's, size kept; lucent; color; none) or a chain, e.g. "
        '"pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,noise:0.02,crops:6@0.5-0.05" (parts: see '
        "fvopt.transform_grammar; add per-image for a draw per image)",
    )
    viz.add_argument(
        "--init",
        default=None,
        metavar="IMAGE",
        help="start from this photo (PNG/JPEG, or .npy C,H,W in [0,1]), resized to cover --size and "
        "center-cropped, through the parameterization's exact inverse (pixel, raw, fft, pyramid and "
        "their fft:k=K / pyramid:free=F forms)",
    )
    viz.add_argument(
        "--transparency",
        default=None,
        metavar="PNG",
        help="also write MaCo's transparency map: the image with the accumulated |gradient| as alpha "
        "(and the map alone as NAME-map.png); gradient methods only",
    )
    viz.add_argument(
        "--render-size",
        default=None,
        type=_render,
        metavar="N|lucent",
        help="the size the network is shown (the image is resized to it after the transforms); "
        "lucent: the model's input size when the image is smaller, as Lucent does",
    )
    add_budget_options(viz, "budget (whichever ends first; default 256 steps)")
    viz.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="N|HxW",
        help="image side in px, or HEIGHTxWIDTH (e.g. 96x160); default: the model's input size",
    )
    viz.add_argument(
        "--decorrelate",
        default=None,
        metavar="FILE|DIR",
        help="reference images (pictures, or .npy arrays for other than 1 or 3 channels) whose channel "
        "covariance's square root replaces the default decorrelation (Lucid's for RGB, else none)",
    )
    _add_input_options(viz)
    viz.add_argument("--batch", type=_positive_int, default=None, help="images per run (default: one per target)")
    viz.add_argument(
        "--tile",
        type=_side,
        default=None,
        help="gradient tile by tile (px), as DeepDream does: memory "
        "bounded by the tile; from the model's minimum input up to --size",
    )
    viz.add_argument("--out", default="viz.png")
    viz.add_argument("--trace", default=None, help="write the trace as JSON here")
    _add_quality_options(viz)
    viz.add_argument(
        "--snapshots", default=None, help="folder for a PNG of the current best every --snapshot-every steps"
    )
    viz.add_argument("--snapshot-every", type=_positive_int, default=25)
    viz.add_argument(
        "--max-batch",
        type=_max_batch,
        default=32,
        help="images per batched forward of a population, or 'auto' (as many as half the free memory holds)",
    )
    fast = viz.add_argument_group("speed settings (opt-in; see fvopt/speed.py)")
    fast.add_argument("--bf16", action="store_true", help="autocast the network pass to bfloat16")
    fast.add_argument("--channels-last", action="store_true", help="NHWC memory format for the network")
    fast.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune kernels for the run's shapes")
    fast.add_argument("--deterministic", action="store_true", help="torch's deterministic algorithms")
    fast.add_argument(
        "--compile",
        type=_compile_mode,
        default="off",
        metavar="MODE",
        help="torch.compile the network pass: off, default, reduce-overhead (CUDA graphs on CUDA), "
        "max-autotune; the first steps pay the compilation",
    )

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
    _add_input_options(dr)
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
    dr.add_argument("--grad", default=None, help="image-gradient processing, e.g. lapnorm or lapnorm:levels=4")
    dr.add_argument("--out", default="dream.png")
    dr.add_argument("--trace", default=None, help="write the dream's settings, stop reason and steps as JSON here")
    dr.add_argument("--octave-images", default=None, help="folder for the image after each octave")
    dr.add_argument(
        "--zoom-frames", type=_positive_int, default=None, help="make an endless-zoom animation of N frames"
    )
    dr.add_argument("--zoom", type=_above_one, default=1.05, help="zoom per frame (above 1)")
    dr.add_argument("--zoom-octaves", type=_positive_int, default=1, help="octaves dreamed on each zoom frame")

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

    be = sub.add_parser(
        "bench",
        parents=[shared.debug],
        help="benchmarks: `fvopt bench run SPEC`, `fvopt bench report DB`, ... (see fvopt bench -h)",
        description="fvopt bench run SPEC.toml --db results.sqlite [--workers N | --executor "
        "dask://HOST:PORT]   |   fvopt bench report results.sqlite --out DIR   |   fvopt bench "
        "NAME -h: the options of each subcommand",
    )
    commands = be.add_subparsers(dest="bench_command", required=True, metavar="{" + ",".join(BENCH_COMMANDS) + "}")
    for name, command in BENCH_COMMANDS.items():
        command.add_arguments(
            commands.add_parser(name, parents=[shared.debug], help=command.help, description=command.help), shared
        )
    from .atlases.cli import add_atlas_parser

    # fvopt atlas MODEL ... | fvopt atlas merge SITE1 SITE2 --out SITE (fvopt/atlases/cli.py)
    add_atlas_parser(sub, add_budget_options)
    _debug_on_every_command(sub)
    return p


class BenchCommand(NamedTuple):
    """One `fvopt bench NAME` subcommand: its one-line help, its arguments and what runs it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser, Shared], None]
    handler: Callable[[argparse.Namespace], int]


# `fvopt bench NAME ...`: a new subcommand (rescore, ...) is one register_bench_command call.
BENCH_COMMANDS: dict[str, BenchCommand] = {}


def register_bench_command(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser, Shared], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Add `fvopt bench NAME`: `add_arguments(parser, shared)` declares its arguments (shared option
    groups in `shared`), `handler(args)` runs it and returns the exit code."""
    BENCH_COMMANDS[name] = BenchCommand(help, add_arguments, handler)


def _refused_here(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Options of another `fvopt bench` subcommand, accepted here (hidden) only to be refused by name with
    where they belong, instead of argparse's bare 'unrecognized arguments'."""
    for flag in flags:
        if flag in ("--no-html", "--force"):
            parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, default=None, nargs="+" if flag == "--seeds" else None, help=argparse.SUPPRESS)


RUN_FLAGS = ("--db", "--workers", "--executor")
REPORT_FLAGS = ("--out", "--targets", "--no-html")
RESCORE_ONLY = ("--reference", "--judge", "--measures", "--seeds", "--limit", "--force")


def _bench_run_arguments(be: argparse.ArgumentParser, shared: Shared) -> None:
    be.add_argument("spec", help="a spec file (TOML)")
    be.add_argument("database", nargs="?", default=None, help=argparse.SUPPRESS)  # refused with the --db hint
    be.add_argument("--db", default=None, help="results database (default results.sqlite; resumed when it exists)")
    be.add_argument("--workers", type=_positive_int, default=None, help="local worker processes (default 1)")
    be.add_argument("--executor", default=None, help="dask://HOST:PORT to run cells on a Dask cluster")
    be.add_argument("--quiet", action="store_true", help="no progress bar; one line per finished cell")
    _refused_here(be, *REPORT_FLAGS, *RESCORE_ONLY)


def _bench_report_arguments(be: argparse.ArgumentParser, shared: Shared) -> None:
    be.set_defaults(spec="report")
    be.add_argument("database", nargs="?", default=None, help="the results database (SQLite)")
    be.add_argument("--out", default=None, help="the output folder (default report)")
    be.add_argument(
        "--targets",
        choices=("fractions", "budget"),
        default=None,
        help="fixed targets as fractions 0.5-0.99 of each problem's best (default), or COCO-style budget-based targets",
    )
    be.add_argument("--no-html", action="store_true", help="skip the self-contained report.html")
    be.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    _refused_here(be, *RUN_FLAGS, *RESCORE_ONLY)


OLD_BENCH = "fvopt: note: `fvopt bench SPEC` is now `fvopt bench run SPEC` (the old spelling still works)"


def _old_spellings(argv: list[str]) -> list[str]:
    """`fvopt bench SPEC ...` (before subcommands) runs as `fvopt bench run SPEC ...`, with a one-line note.
    SPEC is what the old spelling took there: an option, a .toml name or an existing path."""
    command = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
    if command is None or argv[command] != "bench" or command + 1 >= len(argv):
        return argv
    following = argv[command + 1]
    if following in BENCH_COMMANDS or following in ("-h", "--help"):
        return argv
    if not (following.startswith("-") or following.endswith(".toml") or Path(following).exists()):
        return argv  # a mistyped subcommand (`fvopt bench rport`): argparse names the choices
    print(OLD_BENCH, file=sys.stderr)
    return [*argv[: command + 1], "run", *argv[command + 1 :]]


DEBUG_HELP = "after a one-line error, print the traceback behind it (also FVOPT_DEBUG=1)"


def _debug_on_every_command(sub) -> None:
    """--debug on a command built without the shared groups (fvopt atlas): the same flag everywhere."""
    for command in sub.choices.values():
        if not any("--debug" in action.option_strings for action in command._actions):
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


def _debug_wanted(args: argparse.Namespace | None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("FVOPT_DEBUG", "").strip() not in ("", "0")


def _print_traceback(err: BaseException) -> None:
    """The traceback of a one-line error with every exception behind it, including a cause that was
    hidden from the one line (`raise ... from None`)."""
    import traceback

    seen, current = set(), err
    while current is not None and id(current) not in seen:  # show suppressed contexts too
        seen.add(id(current))
        current.__suppress_context__ = False
        current = current.__cause__ or current.__context__
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)


RESCORE_FLAGS = ("reference", "judge", "measures", "seeds", "limit", "force")


def _add_rescore_options(parser: argparse.ArgumentParser) -> None:
    """`fvopt bench rescore DB --reference DIR [--judge NAME] [--measures ...]` (fvopt.bench.rescore)."""
    group = parser.add_argument_group("with 'rescore': judge the stored images again, no cell re-run")
    group.add_argument(
        "--reference",
        default=None,
        metavar="DIR|builtin",
        help="reference images: a folder (any depth) or builtin (scikit-image crops)",
    )
    group.add_argument(
        "--judge",
        default=None,
        metavar="MODEL",
        help="the judging network (default lite1 for lite0, else lite0; never the optimized one)",
    )
    group.add_argument(
        "--measures",
        default=None,
        type=_measures,
        metavar="LIST|all|none",
        help="comma-separated measures, all, or none (default: every measure that applies)",
    )
    group.add_argument(
        "--seeds",
        default=None,
        type=_positive_int_or_zero,
        nargs="+",
        metavar="SEED",
        help="rescore only the cells of these seeds",
    )
    group.add_argument("--limit", default=None, type=_positive_int, help="rescore at most this many cells now")
    group.add_argument("--force", action="store_true", help="judge again cells already judged with these settings")


def _positive_int_or_zero(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: a seed is 0 or more")
    return value


def _bench_rescore(args) -> int:
    """Judge a database's finished cells again (fvopt.bench.rescore): each cell in its own
    transaction, resumable, never a cell re-run."""
    from .bench.rescore import rescore, summary_line

    misplaced = next(
        (
            flag
            for flag, value in (
                ("--db", args.db),
                ("--workers", args.workers),
                ("--executor", args.executor),
                ("--out", args.out),
                ("--targets", args.targets),
                ("--no-html", args.no_html or None),
            )
            if value is not None
        ),
        None,
    )
    if misplaced:
        raise FvoptError(
            f"{misplaced} does not belong to a rescore: fvopt bench rescore RESULTS.sqlite "
            "--reference DIR|builtin [--judge NAME] [--measures LIST]"
        )
    if not args.database:
        raise FvoptError(
            "usage: fvopt bench rescore RESULTS.sqlite --reference DIR|builtin [--judge NAME] [--measures LIST]"
        )
    if args.reference is None:
        raise FvoptError(
            "fvopt bench rescore needs --reference DIR (a folder of natural images) or --reference "
            "builtin (the scikit-image stand-in)"
        )
    summary = rescore(
        args.database,
        args.reference,
        args.judge,
        args.measures,
        force=args.force,
        seeds=args.seeds,
        limit=args.limit,
        progress=not args.quiet,
        log=print if args.quiet else None,
    )
    text = f"reference {args.reference}, judge {args.judge or 'default'}, measures {args.measures or 'default'}"
    print(summary_line(args.database, summary, text))
    if summary.interrupted:
        from .signals import exit_code

        print(
            f"fvopt: {_stopped()}: every cell rescored before it is kept; run the same command again to continue",
            file=sys.stderr,
        )
        return exit_code()
    return 1 if summary.failed else 0


def _add_quality_options(parser: argparse.ArgumentParser) -> None:
    """--reference, --judge, --measures: the quality measures of fvopt.quality (issue 21)."""
    group = parser.add_argument_group("quality measures (fvopt.quality; see README: Quality measures)")
    group.add_argument(
        "--reference",
        default=None,
        metavar="DIR|builtin|none",
        help="reference images: a folder (any depth) or builtin (scikit-image crops); enables "
        "natural_ratio, plausibility, mis; none (the default): no reference (a folder named none: ./none)",
    )
    group.add_argument(
        "--judge",
        default=None,
        metavar="MODEL",
        help="the network that judges (default lite1 for lite0, else lite0; never the optimized one)",
    )
    group.add_argument(
        "--measures",
        default=None,
        type=_measures,
        metavar="LIST|all|none",
        help="comma-separated natural_ratio,plausibility,mis,transfer,spectral_slope,diversity; all; "
        "none (default: those that apply; without --reference, spectral_slope and transfer)",
    )


def _measures(text: str) -> str:
    from .quality import parse_measures

    try:
        parse_measures(text)
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _transforms(text: str) -> str:
    from .transforms import make_transforms

    try:
        make_transforms(text)
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _render(text: str) -> str | int:
    if text == "lucent":
        return text
    try:
        return _side(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: must be a side in px ({IMAGE_SIDE.allowed()}) or 'lucent'"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Usage errors: one line on stderr, exit 2. Ctrl-C: what was done is kept, exit 130;
    SIGTERM and SIGHUP (a scheduler's stop) likewise, exit 143 and 129 (fvopt/signals.py)."""
    from . import signals

    signals.install()  # only the command line installs handlers; the Python API leaves them alone
    args = build_parser().parse_args(_old_spellings(list(sys.argv[1:] if argv is None else argv)))
    commands = {
        "models": _models,
        "optimizers": _optimizers,
        "plugins": _plugins,
        "layers": _layers,
        "viz": _viz,
        "dream": _dream,
        "bench": lambda a: BENCH_COMMANDS[a.bench_command].handler(a),
        "examples": _examples,
        "atlas": _atlas,
    }
    try:
        return commands[args.command](args)
    except FvoptError as err:
        print(f"fvopt: error: {err}", file=sys.stderr)
        if _debug_wanted(args):
            _print_traceback(err)
        return 2
    except KeyboardInterrupt as stop:
        kept = getattr(stop, "fvopt_kept", None)  # quality.activations.KEPT_WORK (not imported: it loads torch)
        if kept:  # a stopped reference pass is resumed by the next one over the same images and layers
            print(f"fvopt: {_stopped()}: {kept}; the same command resumes from there", file=sys.stderr)
        else:
            print(f"fvopt: {_stopped()} before any result was ready; nothing was written", file=sys.stderr)
        return signals.exit_code()
    except BrokenPipeError:  # `fvopt optimizers | head -1`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _models(args) -> int:
    from .models import known_models

    for name in known_models():
        print(name)
    return 0


def _plugins(args) -> int:
    from .plugins import describe_plugins

    for line in describe_plugins():
        print(line)
    return 0


def _optimizers(args) -> int:
    from .strategies import REGISTRY
    from .strategies.base import FAMILIES

    def takes(options) -> str:
        return "; options: " + ", ".join(f"{k} ({o.allowed()})" for k, o in options.items()) if options else ""

    for name in sorted(REGISTRY):
        entry = REGISTRY[name]
        source = f" (plugin: {entry.source})" if entry.source != "fvopt" else ""
        print(f"{name:12s} {entry.summary}{takes(entry.options)}{source}")
    for family in FAMILIES.values():  # ng:<Name>, hybrid:A>B, torch:<Name> and each torch.optim class
        for name, summary, options in family.listing():
            print(f"{name:12s} {summary}{takes(options)}")
    return 0


def _layers(args) -> int:
    from .models import list_layers, load_model
    from .canvas import hw

    model = load_model(args.model, weights=args.weights, **_preprocessing(args))
    size = model.input_size if model.fixed_size else (args.size or model.input_size)
    h, w = hw(size)
    note = f" (fixed-size model: images of any size are resampled to {h}x{w} px)" if model.fixed_size else ""
    print(f"{model.name} at {h}x{w} px, {model.channels} channel{'s' if model.channels != 1 else ''}{note}")
    if model.hookable is not None:
        print(f"no layers: {model.hookable}")
        print("logits (the model output): class:INDEX")
        return 0
    layers = list_layers(model, size)
    wide = max([len(info.name) for info in layers] + [5])
    kind = max([len(info.kind) for info in layers] + [4])
    print(f"{'layer':{wide}s} {'type':{kind}s} {'units':>6s}  layout")
    hidden = 0
    for info in layers:
        if info.layout is not None:
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {info.layout.units:6d}  {info.layout.describe()}")
        elif info.spellings and info.call is None:  # a module run several times: name one call, LAYER#K
            calls = f"runs {info.calls} times per forward: {', '.join(info.spellings)}"
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {'-':>6s}  {calls} (#K reads the K-th call)")
        elif args.all:
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {'-':>6s}  not readable: {info.problem}")
        else:
            hidden += 1
    print(
        "logits (the model output): class:INDEX. Targets: channel:LAYER:UNIT (mean over positions or patch "
        "tokens), neuron:LAYER:UNIT[:Y:X] (one position or patch cell), token:LAYER:UNIT[:K] (prefix token K, "
        "0 = class token), layer:LAYER"
    )
    if hidden:
        print(f"({hidden} layers whose output cannot be read as a feature map are hidden: --all lists them with why)")
    return 0


def _viz(args) -> int:
    from .evaluate import top_classes
    from .images import check_distinct, check_folder_writable, check_image_path, check_writable
    from .models import resolve_device
    from .speed import Speed
    from .viz import visualize

    map_path = (
        None
        if not args.transparency
        else Path(args.transparency).with_name(Path(args.transparency).stem + "-map" + Path(args.transparency).suffix)
    )
    check_distinct(out=args.out, trace=args.trace, transparency=args.transparency, **{"transparency map": map_path})
    check_image_path(args.out, "--out")
    if args.transparency:
        check_image_path(args.transparency, "--transparency", alpha=True)  # RGBA: not JPEG, refused before the run
    check_writable(args.trace, "--trace")
    check_folder_writable(args.snapshots, "--snapshots folder")
    speed = Speed(args.bf16, args.channels_last, args.cudnn_benchmark, args.deterministic, args.compile)
    speed.check_compile(resolve_device(args.device))  # no C++ compiler or Triton: refused before the model loads
    options = dict(args.option)
    for key in ("popsize", "sigma", "switch"):
        if getattr(args, key) is not None:
            options = merge_options(options, {key: getattr(args, key)})
    vis = visualize(
        args.model,
        args.target,
        args.param,
        args.optimizer,
        lr=args.lr,
        steps=args.steps,
        seconds=args.seconds,
        forwards=args.forwards,
        passes=args.passes,
        size=args.size,
        batch=args.batch,
        seed=args.seed,
        device=args.device,
        transforms=args.transforms,
        grad=args.grad,
        options=options,
        weights=args.weights,
        progress=not args.quiet,
        snapshot_every=args.snapshot_every if args.snapshots else 0,
        snapshot_dir=args.snapshots,
        max_batch=args.max_batch,
        tile=args.tile,
        decorrelate=args.decorrelate,
        **_preprocessing(args),
        speed=speed,
        render=args.render_size,
        transparency=bool(args.transparency),
        init=args.init,
        reference=args.reference,
        judge=args.judge,
        measures=args.measures,
    )
    out = vis.save(args.out)
    if args.transparency and vis.transparency is not None:
        vis.save_transparency(args.transparency)
    if args.trace:
        vis.save_trace(args.trace)
    t = vis.trace
    robust, value = t["final"]["robust_value"], t["final"]["value"]
    line = (
        f"wrote {out}: {t['target']} {'not scored' if value is None else f'value {value:.4g}'}"
        f"{f' (robust {robust:.4g})' if robust is not None else ''}; {t['optimizer']} on {t['param']} "
        f"({t['param_dim']} dims), {vis.result.steps} steps, {t['forwards']} forwards, {t['backwards']} backwards, "
        f"{t['seconds']:.1f} s; normalization: {t['normalization']}"
    )
    if t["param"] != t["param_requested"]:
        line += f" [searched {t['param']}, the low-dimensional form of {t['param_requested']}]"
    if t.get("init"):
        line += f"; started from {t['init']['image']} (rendered back within {t['init']['max_pixel_error']:.1e})"
    if t["target"].startswith("class:") and vis.images.shape[0] == 1 and not vis.interrupted:
        from .models import class_name
        from .models.user import is_user_model

        p, c = top_classes(vis.model, vis.images, k=1)
        named = "" if is_user_model(args.model) else f" {class_name(int(c[0, 0]))}"  # ImageNet names: not yours
        line += f"; top-1 {int(c[0, 0])}{named} (p={float(p[0, 0]):.2f})"
    print(line)
    if t.get("normalization_note"):
        print(f"note: {t['normalization_note']}", file=sys.stderr)
    for part in [
        t,
        *(t.get("parts") or []),
    ]:  # torch:<Name> at torch's own lr: say so (fvopt/strategies/torch_optim.py)
        if part.get("lr_source") == "torch's default":
            print(
                f"note: {part['ran']} ran at torch's default lr {part['arguments']['lr']:g} (fvopt's adam: 0.05); "
                "give --lr for larger steps",
                file=sys.stderr,
            )
    quality = vis.trace.get("quality")
    if quality and "measures" in quality:
        from .quality.score import summary_line

        print(summary_line(quality))
    elif quality and quality.get("stopped_while_judging"):  # the run finished; its judging was stopped
        from .signals import exit_code

        kept = quality.get("kept")
        print(
            f"fvopt: {_stopped()} while judging for quality: kept the image in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''} (not judged); "
            + (
                f"{kept}, and the same command resumes the reference pass from there"
                if kept
                else "a rerun judges it again (finished reference passes are cached)"
            ),
            file=sys.stderr,
        )
        return exit_code()
    elif quality and not vis.interrupted:
        print(f"quality: {quality.get('error') or quality.get('note')}", file=sys.stderr)
    if vis.interrupted:  # one line: what was kept, and that it was not judged
        from .signals import exit_code

        if vis.scoring_stopped:  # the optimization had finished: only its scoring was cut short
            print(
                f"fvopt: {_stopped()} while scoring the finished run ({vis.result.steps} steps): kept its image "
                f"in {out}{f' and its trace in {args.trace}' if args.trace else ''}; scoring was stopped, so "
                "the image has no final scores",
                file=sys.stderr,
            )
            return exit_code()
        print(
            f"fvopt: {_stopped()} after {vis.result.steps} steps: kept the best image so far in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''}"
            f"{' (not judged for quality)' if quality else ''}",
            file=sys.stderr,
        )
        return exit_code()
    from .run import BUDGET_STOPS

    if vis.result.stop_reason not in BUDGET_STOPS:
        print(f"note: {vis.result.stop_reason}", file=sys.stderr)
    return 0


def _dream(args) -> int:
    from .dream import (
        DEFAULT_SCHEME,
        check_dream_fits,
        dream,
        longer_side_size,
        resolve_scheme,
        scheme_for_model,
        scheme_octave_sizes,
    )
    from .images import (
        check_distinct,
        check_folder_writable,
        check_image_path,
        check_writable,
        image_size,
        load_image,
        save_images,
    )
    from .models import load_model, resolve_device

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
        from .signals import exit_code

        print(
            f"fvopt: {_stopped()} after {len(result.trace)} steps: kept the dream so far in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''}",
            file=sys.stderr,
        )
        return exit_code()
    from .run import BUDGET_STOPS

    if result.stop_reason not in BUDGET_STOPS:  # a NaN stopped the run loop: the best image before it was kept
        print(f"note: {result.stop_reason}", file=sys.stderr)
    return 0


def _dream_zoom(args, result, scheme, settings: dict) -> int:
    """The endless zoom after the first dream: frames kept as they finish; a stop (even one that lands
    while the GIF is written) keeps every finished frame, writes the trace, and exits 128 + signal."""
    from .dream import dream, resolve_scheme, zoom_frames
    from .signals import exit_code

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
    from .dream import save_animation

    try:
        return save_animation(frames, out), False
    except KeyboardInterrupt:
        return save_animation(frames, out), True


def _stopped() -> str:
    """'interrupted' (Ctrl-C), or 'terminated (SIGTERM)' / 'terminated (SIGHUP)'."""
    from . import signals

    return "interrupted" if signals.received is None else f"terminated ({signals.name()})"


def _write_dream_trace(path: str, result, out) -> None:
    """The dream's settings, stop reason, counts and per-step rows as strict JSON (written atomically)."""
    import json

    from .atomic import write_text
    from .viz import json_safe

    trace = {
        "image": str(out),
        "stop_reason": result.stop_reason,
        "forwards": result.forwards,
        "backwards": result.backwards,
        "seconds": result.seconds,
        "settings": result.settings,
        "steps": result.trace,
    }
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(json_safe(trace), indent=1, allow_nan=False))
    except OSError as err:
        raise FvoptError(f"cannot write trace '{path}': {err.strerror or err}") from None


def _atlas(args) -> int:
    from .atlases.cli import run_atlas_command

    return run_atlas_command(args)


def _examples(args) -> int:
    from .quality.examples import dataset_examples, write_examples
    from .quality.reference import reference_set

    ref = reference_set(args.reference)  # a missing, empty or image-less folder: one line, before the model loads
    from .models import resolve_device

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


def _bench(args) -> int:
    if args.spec == "rescore":
        return _bench_rescore(args)
    given = next((f"--{flag}" for flag in RESCORE_FLAGS if getattr(args, flag) not in (None, False)), None)
    if given:
        raise FvoptError(
            f"{given} belongs to `fvopt bench rescore DB`; a spec says its quality settings in "
            "[bench] (reference, judge, measures)"
        )
    if args.spec == "report":
        from .bench.report import write_report

        misplaced = next(
            (
                flag
                for flag, value in (("--db", args.db), ("--workers", args.workers), ("--executor", args.executor))
                if value is not None
            ),
            None,
        )
        if misplaced:
            raise FvoptError(
                f"{misplaced} belongs to a spec run, not to a report: fvopt bench report RESULTS.sqlite --out DIR"
            )
        if not args.database:
            raise FvoptError("usage: fvopt bench report RESULTS.sqlite --out DIR")
        out = "report" if args.out is None else args.out
        files = write_report(args.database, out, targets=args.targets or "fractions", html=not args.no_html)
        print(f"wrote {len(files)} files to {out}: " + ", ".join(f.name for f in files))
        if not args.no_html:
            print(f"open {Path(out) / 'report.html'} in a browser: one file, with every table and figure")
        return 0
    if args.database is not None:  # `fvopt bench spec.toml my.sqlite` would silently write results.sqlite
        raise FvoptError(
            f"unexpected '{args.database}' after the spec: name the results database with --db {args.database}"
        )
    for flag, value in (("--out", args.out), ("--targets", args.targets), ("--no-html", args.no_html or None)):
        if value is not None:
            raise FvoptError(f"{flag} belongs to `fvopt bench report`; a spec run writes its results to --db")
    from .bench.runner import run_spec
    from .bench.spec import load_spec

    db = "results.sqlite" if args.db is None else args.db
    spec = load_spec(args.spec)
    summary = run_spec(
        spec,
        db,
        workers=args.workers or 1,
        executor=args.executor,
        progress=not args.quiet,
        log=print if args.quiet else None,
    )
    if summary.interrupted:
        from .signals import exit_code

        print(
            f"fvopt: {_stopped()}: {summary.done} of {summary.total} cells done in {db}, the running ones "
            f"abandoned; run the same command again to resume",
            file=sys.stderr,
        )
        return exit_code()
    print(
        f"{spec.name}: {summary.total} cells, {summary.skipped} already done, {summary.ran} ran, "
        f"{summary.failed} failed; results in {db}"
    )
    return 1 if summary.failed else 0


register_bench_command(
    "run", "run a benchmark spec (TOML) into a results database; resumes a finished part", _bench_run_arguments, _bench
)
register_bench_command(
    "report",
    "every table, figure and export of a results database into a folder (never runs a cell)",
    _bench_report_arguments,
    _bench,
)


def _bench_rescore_arguments(be: argparse.ArgumentParser, shared: Shared) -> None:
    be.set_defaults(spec="rescore")
    be.add_argument("database", nargs="?", default=None, help="the results database (SQLite)")
    _add_rescore_options(be)
    be.add_argument("--quiet", action="store_true", help="no progress bar; one line per rescored cell")
    _refused_here(be, *RUN_FLAGS, *REPORT_FLAGS)


register_bench_command(
    "rescore",
    "judge a database's finished cells again with quality measures (never re-runs a cell)",
    _bench_rescore_arguments,
    _bench,
)


if __name__ == "__main__":
    sys.exit(main())
