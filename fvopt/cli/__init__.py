"""The `fvopt` command line (fvopt/cli/app.py); one module per command beside it."""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
