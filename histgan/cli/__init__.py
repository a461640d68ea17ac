"""Command-line interface: ``python -m histgan <command> ...``.

The CLI only maps flags onto library calls and configs; the library never parses argv. Every
subcommand has ``--help``. Errors a user can fix (bad arguments, missing or corrupt files, bad
parameters) print one line ``histgan: error: ...`` and exit with code 2.

Each command registers itself from the module of its group: :mod:`histgan.cli.data` (``data synth``),
:mod:`histgan.cli.training` (``train``, ``sweep``, ``masker``), :mod:`histgan.cli.translation`
(``translate``, ``edits fit``) and :mod:`histgan.cli.evaluation` (``evaluate``); the flags and argument
types they share are in :mod:`histgan.cli.arguments`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from histgan.cli.arguments import EXIT_USAGE, Parser
from histgan.cli.data import add_data
from histgan.cli.evaluation import add_evaluate
from histgan.cli.training import add_masker, add_sweep, add_train
from histgan.cli.translation import add_edits, add_translate
from histgan.errors import HistganError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``histgan`` parser with every subcommand."""
    parser = Parser(
        prog="histgan",
        description="Colour-controlled unpaired image translation (histogram-conditioned CycleGAN).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add in (add_data, add_train, add_translate, add_evaluate, add_sweep, add_masker, add_edits):
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
    except OSError as exc:  # disk full, I/O error: the environment failed, not the arguments
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"histgan: error: {exc.strerror or exc}{where}; free space or fix the path, then rerun "
              "(training resumes with --resume)", file=sys.stderr)
        return 1
