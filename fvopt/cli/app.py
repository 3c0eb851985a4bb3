"""The `fvopt` command line: parse, call the library, print. No logic Python users cannot reach.
Each command is a module of this package with `add_parser(sub, shared)` and its handler."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import FvoptError
from . import atlas, bench, dream, examples, listing, options, viz
from .common import DEBUG_HELP, Shared, _OneLineParser, _debug_wanted, _print_traceback, _stopped

# the handler of each command (the parsers are added in this order by build_parser)
COMMANDS = {
    "models": listing.run_models,
    "optimizers": listing.run_optimizers,
    "plugins": listing.run_plugins,
    "layers": listing.run_layers,
    "viz": viz.run,
    "dream": dream.run,
    "examples": examples.run,
    "bench": bench.run,
    "atlas": atlas.run,
    "options": options.run,
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _OneLineParser(
        prog="fvopt",
        description="Feature visualization: compare optimizers and image parameterizations under one budget.",
    )
    p.add_argument("--version", action="version", version=f"fvopt {__version__}")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    shared = Shared()
    sub = p.add_subparsers(dest="command", required=True)
    for command in (listing, viz, dream, examples, bench, atlas, options):
        command.add_parser(sub, shared)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. Usage errors: one line on stderr, exit 2. Ctrl-C: what was done is kept, exit 130;
    SIGTERM and SIGHUP (a scheduler's stop) likewise, exit 143 and 129 (fvopt/runtime/signals.py)."""
    from ..runtime import signals

    signals.install()  # only the command line installs handlers; the Python API leaves them alone
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return COMMANDS[args.command](args)
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
