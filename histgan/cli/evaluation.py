"""``histgan evaluate``: trained runs and the non-learned baselines on every test pair, with the report."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_evaluate"]


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser(
        "evaluate", help="ΔE, JIS grades and shape metrics over all test pairs; report and figures",
        description="Run trained models and the four non-learned baselines on every test input × test "
        "reference (the paper's all-pairs protocol) and write pairs.csv, summary.json, table2.md (the "
        "paper's Table 2 layout) and figures (fig3.png, fig4_*.png, histograms_*.png, colour_vs_shape.png).",
        epilog="Example: python -m histgan evaluate --runs runs/mine --data data/synthetic --out runs/mine/eval "
        "--device cuda")
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN",
                   help="run directories to evaluate (their latest checkpoint); none = baselines only")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="dataset root with testA/ (inputs), testB/ (references) and their *_mask/ folders")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the report (created if missing)")
    p.add_argument("--pairs", type=_pairs_arg, default="all", metavar="all|N",
                   help="'all' (default): every input × every reference; N: the first N inputs × first N references")
    p.add_argument("--device", default="cpu", help="where the models run, e.g. cpu or cuda (default cpu)")
    p.add_argument("--no-baselines", action="store_true",
                   help="leave out the baselines (flat fill, luminance tint, Reinhard, histogram matching)")
    p.add_argument("--checkpoint-pairs", type=int, default=4, metavar="N",
                   help="evaluate every checkpoint of each run on N × N pairs for the colour-vs-shape "
                   "figure (default 4; 0 skips it)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="pairs per model call (default 16)")
    p.add_argument("--size", type=int, metavar="PX", help="resize the test images to PX × PX (default: as stored)")
    p.add_argument("--reference-mask", type=_reference_masks_arg, default="auto", metavar="auto|none|DIR",
                   help="masks of the references when testB_mask/ is missing: auto (default: alpha, else the "
                   "masker's prediction, saved in OUT/reference_masks/), none (whole images), or a folder of masks")
    p.add_argument("--masker", metavar="DIR", help="masker for --reference-mask auto (default: the first RUN/masker/)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_evaluate)


def _pairs_arg(text: str) -> str | int:
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be 'all' or a positive integer, got {text!r}")
    return int(text)


def _evaluate(args: argparse.Namespace) -> int:
    from histgan.eval.trained_runs import evaluate_runs
    from histgan.reference_mask import masked_reference_root
    from histgan.train.masker import MASKER_DIRNAME

    if args.checkpoint_pairs < 0:
        raise ValueError(f"--checkpoint-pairs must be >= 0, got {args.checkpoint_pairs}")
    run_dir = next((r for r in args.runs if (Path(r) / MASKER_DIRNAME).is_dir()), None)
    data = masked_reference_root(args.data, args.out, args.reference_mask, args.masker, run_dir)
    written = evaluate_runs(args.runs, data, args.out, pairs=args.pairs, baselines=not args.no_baselines,
                            checkpoint_pairs=args.checkpoint_pairs, batch_size=args.batch_size,
                            device=args.device, size=args.size, progress=not args.no_progress)
    print(f"wrote {len(written)} files to {args.out}; table: {written['table']}")
    return 0


def _reference_masks_arg(text: str) -> str:
    """``--reference-mask`` of ``evaluate``: auto, none, or a folder of masks."""
    from histgan.reference_mask import REFERENCE_MASK_MODES  # torch, but only once the flag is used

    if text in REFERENCE_MASK_MODES or Path(text).is_dir():
        return text
    raise argparse.ArgumentTypeError(f"must be auto, none or an existing folder of masks, got {text!r}")
