"""Command-line interface: ``python -m histgan <command> ...``.

The CLI only maps flags onto library calls and configs; the library never parses argv. Every
subcommand has ``--help``. Errors a user can fix (bad arguments, missing or corrupt files, bad
parameters) print one line ``histgan: error: ...`` and exit with code 2.

Each command group registers itself in its own ``_add_*`` function below.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from histgan.errors import HistganError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"histgan: error: {message} (see '{self.prog} --help')\n")


# ---- data ---------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    """Register ``data ...`` subcommands (issue: data)."""


# ---- train / translate --------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``translate`` (issue: models and training)."""


# ---- evaluate -----------------------------------------------------------------------------------
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` (issue: evaluation)."""


# ---- sweep --------------------------------------------------------------------------------------
def _add_sweep(sub: argparse._SubParsersAction) -> None:
    """Register ``sweep`` (issue: the book's batch experiments)."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="histgan",
        description="Colour-controlled unpaired image translation (histogram-conditioned CycleGAN).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_data, _add_train, _add_evaluate, _add_sweep):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("histgan: interrupted", file=sys.stderr)
        return 130
    except (HistganError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"histgan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
