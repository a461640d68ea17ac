"""What the subcommands share: the parser's one-line errors, the training flags, argument types."""

from __future__ import annotations

import argparse

from histgan.config import PRESETS

__all__ = ["EXIT_USAGE", "Parser", "add_command_group", "add_training_flags", "positive_int"]

#: Exit code of a usage error (argparse's own convention).
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"histgan: error: {message} (see '{self.prog} --help')\n")


def add_command_group(sub: argparse._SubParsersAction, name: str, dest: str, **parser_options: str
                      ) -> argparse._SubParsersAction:
    """A command with sub-commands of its own (``data synth``, ``edits fit``): its parser from
    ``parser_options`` (``help``, ``description``, ``epilog``), and its required sub-command choice."""
    group = sub.add_parser(name, **parser_options).add_subparsers(dest=dest, metavar=dest.upper(), parser_class=Parser)
    group.required = True
    return group


def add_training_flags(p: argparse.ArgumentParser, *, data_help: str, out_help: str, data_required: bool,
                       out_default: str | None, preset_default: str | None) -> None:
    """``--preset --steps --data --out --device``: one spelling and meaning in every subcommand that trains."""
    p.add_argument("--preset", choices=tuple(PRESETS), default=preset_default,
                   help="starting configuration: quick (tests), cpu (~5 min per run on 2 cores), paper (GPU, 256²)"
                   + (f" (default {preset_default})" if preset_default else " (default: the notebook's, quick)"))
    p.add_argument("--steps", type=int, metavar="N", help="training steps (overrides the preset)")
    p.add_argument("--data", required=data_required, metavar="DIR", help=data_help)
    p.add_argument("--out", required=out_default is None, default=out_default, metavar="DIR", help=out_help)
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu; default), cpu, cuda, cuda:N or mps")


def positive_int(text: str) -> int:
    """An argument that must be an integer >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)
