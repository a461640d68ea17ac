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
    p = sub.add_parser("data", help="make or inspect datasets",
                       description="Make or inspect datasets.")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", parser_class=_Parser)
    data_sub.required = True
    s = data_sub.add_parser(
        "synth", help="write the synthetic knee benchmark (X: grey renders, Y: skin-toned photos)",
        description="Write the synthetic knee benchmark in the CycleGAN layout (trainA/ trainB/ testA/ "
        "testB/, PNG) with *_mask/ folders (255 = foreground) and meta.json (parameters of every "
        "image; ground truth for every test pair). Resumable: rerun the same command after an "
        "interruption to complete the set.")
    s.add_argument("--out", required=True, metavar="DIR", help="destination folder (created if missing)")
    s.add_argument("--preset", choices=("cpu", "quick", "paper"), default="cpu",
                   help="sizes to start from: cpu = 64px, 400/400 train, 16/16 test (default); "
                   "quick = 32px, 6/6, 3/3 (tests); paper = 256px, 438/477, 28/28")
    s.add_argument("--size", type=int, metavar="PX", help="image side in pixels (>= 16; overrides the preset)")
    s.add_argument("--n-train", type=int, nargs="+", metavar="N",
                   help="training images: one count for both domains, or two (A then B); overrides the preset")
    s.add_argument("--n-test", type=int, nargs="+", metavar="N",
                   help="test images: one count for both domains, or two (A then B); overrides the preset")
    s.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=_data_synth)


def _data_synth(args: argparse.Namespace) -> int:
    from histgan.synthetic import PRESETS, write_dataset

    preset = PRESETS[args.preset]
    counts = {}
    for flag in ("n_train", "n_test"):
        n = getattr(args, flag)
        if n is not None and len(n) > 2:
            raise ValueError(f"--{flag.replace('_', '-')} takes one or two counts, got {len(n)}")
        counts[flag] = getattr(preset, flag) if n is None else (n[0], n[-1])
    out = write_dataset(args.out, size=preset.size if args.size is None else args.size,
                        seed=args.seed, progress=not args.no_progress, **counts)
    print(f"wrote {sum(len(v) for v in _counts(out))} images (+ masks, meta.json) to {out}")
    return 0


def _counts(out) -> list:
    from histgan.synthetic import load_meta

    return list(load_meta(out)["images"].values())


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
