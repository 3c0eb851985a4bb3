"""What every `fvopt` command shares: the one-line usage errors, the shared option groups (argparse parent
parsers), typed argparse helpers with the Python API's checks, and --debug."""

from __future__ import annotations

import argparse
import os
import sys

from ..config.options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, Option
from ..config.run import PREPROCESSING
from ..errors import FvoptError


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
_side = _typed(IMAGE_SIDE)
_above_one = _typed(Option(float, low=1, low_open=True, high=100))
_nonnegative_int = _typed(Option(int, low=0))


def add_budget_options(parser, title: str, command: str) -> None:
    """--steps, --seconds, --forwards, --passes as one argument group: the declared budget settings
    (fvopt/config/run.py), so `viz` and `atlas` check and spell them alike."""
    from ..config import setting
    from .flags import add_flag

    group = parser.add_argument_group(title)
    for name in ("steps", "seconds", "forwards", "passes"):
        add_flag(group, setting(name), command)


def _size(text: str):
    """--size N or HEIGHTxWIDTH, checked by the same function as the Python API (fvopt.io.canvas)."""
    from ..io.canvas import parse_size

    try:
        return parse_size(text, "size")
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_input_options(parser: argparse.ArgumentParser, command: str) -> None:
    """What a user's network expects (fvopt.wrap's arguments, declared in fvopt/config/run.py); they override a
    named model's own."""
    from ..config import setting
    from .flags import add_flag

    group = parser.add_argument_group("the network's input (your own model; overrides a named model's)")
    for name in PREPROCESSING:
        add_flag(group, setting(name), command)


def _preprocessing(args) -> dict:
    return {k: getattr(args, k) for k in PREPROCESSING if getattr(args, k, None) is not None}


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), naming the bad value; the full usage stays in --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")

    def route(self, word: str, parser: argparse.ArgumentParser) -> None:
        """`PROG WORD ...` is parsed by `parser`: a subcommand beside a positional (`fvopt atlas merge` beside
        `fvopt atlas MODEL`), which argparse's subparsers cannot mix."""
        self._routes = {**getattr(self, "_routes", {}), word: parser}

    def parse_known_args(self, args=None, namespace=None):
        routed = getattr(self, "_routes", {}).get(args[0]) if args else None
        if routed is not None:
            return routed.parse_known_args(args[1:], namespace)
        return super().parse_known_args(args, namespace)


class Shared:
    """Options repeated across commands, each defined once as an argparse parent parser: a command
    lists the groups it takes (`parents=[...]`), so the same flag has the same type, default and help
    everywhere."""

    def __init__(self) -> None:
        from ..config import setting
        from .flags import add_flag

        self.debug = self._parent()
        self.debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        for name in ("model", "weights", "device", "seed", "quiet"):  # declared in fvopt/config: one flag each
            parent = self._parent()
            add_flag(parent, setting(name))
            setattr(self, name, parent)

    @staticmethod
    def _parent() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)


DEBUG_HELP = "after a one-line error, print the traceback behind it (also FVOPT_DEBUG=1)"


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


def _stopped() -> str:
    """'interrupted' (Ctrl-C), or 'terminated (SIGTERM)' / 'terminated (SIGHUP)'."""
    from ..runtime import signals

    return "interrupted" if signals.received is None else f"terminated ({signals.name()})"


def _measures(text: str) -> str:
    from ..quality import parse_measures

    try:
        parse_measures(text)
    except FvoptError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
