"""`fvopt bench run|report|rescore ...`: a registry of subcommands (BENCH_COMMANDS); a new one is one
register_bench_command call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from ..errors import FvoptError
from .common import Shared, _measures, _positive_int, _stopped


def add_parser(sub, shared: Shared) -> None:
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


def run(args) -> int:
    return BENCH_COMMANDS[args.bench_command].handler(args)


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
    from ..bench.rescore import rescore, summary_line

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
        from ..runtime.signals import exit_code

        print(
            f"fvopt: {_stopped()}: every cell rescored before it is kept; run the same command again to continue",
            file=sys.stderr,
        )
        return exit_code()
    return 1 if summary.failed else 0


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
        from ..bench.report import write_report

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
    from ..bench.runner import run_spec
    from ..bench.spec import load_spec

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
        from ..runtime.signals import exit_code

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
