"""The `fvopt` command line (fvopt/cli/main.py); one module per command beside it."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
