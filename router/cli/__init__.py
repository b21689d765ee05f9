"""The ``tocsin`` command line (also ``python -m router``): see :mod:`router.cli.main`."""

from router.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
