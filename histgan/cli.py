"""Command-line interface: ``python -m histgan <command> ...``.

The CLI only maps flags onto library calls and configs; the library never parses argv. Every
subcommand has ``--help``. Errors a user can fix (bad arguments, missing or corrupt files, bad
parameters) print one line ``histgan: error: ...`` and exit with code 2.

Each command group registers itself in its own ``_add_*`` function below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from histgan.errors import HistganError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"histgan: error: {message} (see '{self.prog} --help')\n")


# ---- flags shared by the subcommands that train --------------------------------------------------
PRESET_CHOICES = ("quick", "cpu", "paper")


def _add_training_flags(p: argparse.ArgumentParser, *, data_help: str, out_help: str, data_required: bool,
                        out_default: str | None, preset_default: str | None) -> None:
    """``--preset --steps --data --out --device``: one spelling and meaning in every subcommand that trains."""
    p.add_argument("--preset", choices=PRESET_CHOICES, default=preset_default,
                   help="starting configuration: quick (tests), cpu (~5 min per run on 2 cores), paper (GPU, 256²)"
                   + (f" (default {preset_default})" if preset_default else " (default: the notebook's, quick)"))
    p.add_argument("--steps", type=int, metavar="N", help="training steps (overrides the preset)")
    p.add_argument("--data", required=data_required, metavar="DIR", help=data_help)
    p.add_argument("--out", required=out_default is None, default=out_default, metavar="DIR", help=out_help)
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu; default), cpu, cuda, cuda:N or mps")


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _jobs_arg(text: str) -> int | None:
    return None if text == "auto" else _positive_int(text)


def _shard_arg(text: str) -> tuple[int, int]:
    from histgan.train.parallel import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None


# ---- data ---------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    """Register ``data ...`` subcommands."""
    p = sub.add_parser("data", help="make or inspect datasets",
                       description="Make or inspect datasets.",
                       epilog="Example: python -m histgan data synth --out data/synthetic --preset cpu")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", parser_class=_Parser)
    data_sub.required = True
    s = data_sub.add_parser(
        "synth", help="write the synthetic knee benchmark (X: grey renders, Y: skin-toned photos)",
        description="Write the synthetic knee benchmark in the CycleGAN layout (trainA/ trainB/ testA/ "
        "testB/, PNG) with *_mask/ folders (255 = foreground) and meta.json (parameters of every "
        "image; ground truth for every test pair). Resumable: rerun the same command after an "
        "interruption to complete the set.",
        epilog="Example: python -m histgan data synth --out data/synthetic --preset cpu")
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
    from histgan.data.sampling import DEFAULT_DOMAIN, DOMAINS  # numpy only

    s.add_argument("--domain", choices=DOMAINS, default=DEFAULT_DOMAIN,
                   help="Y images: photo = photographs (skin texture, subsurface look, sheen, textured scenes, cast "
                   "shadow, camera; the default, the book's benchmark); plain = the simulator's shading times a "
                   "skin colour on a smooth backdrop (the earlier benchmark)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=_data_synth)


def _data_synth(args: argparse.Namespace) -> int:
    from histgan.data.synthetic import PRESETS, write_dataset

    preset = PRESETS[args.preset]
    counts = {}
    for flag in ("n_train", "n_test"):
        n = getattr(args, flag)
        if n is not None and len(n) > 2:
            raise ValueError(f"--{flag.replace('_', '-')} takes one or two counts, got {len(n)}")
        counts[flag] = getattr(preset, flag) if n is None else (n[0], n[-1])
    out = write_dataset(args.out, size=preset.size if args.size is None else args.size,
                        seed=args.seed, progress=not args.no_progress, domain=args.domain, **counts)
    print(f"wrote {sum(len(v) for v in _counts(out))} images (+ masks, meta.json) to {out}")
    return 0


def _counts(out) -> list:
    from histgan.data.synthetic import load_meta

    return list(load_meta(out)["images"].values())


# ---- train / translate --------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``translate``."""
    from histgan.config import GENERATORS, INJECTIONS  # no torch
    t = sub.add_parser("train", help="train one of the four models (resumable, DDP under torchrun)",
                       description="Train a model on an unpaired CycleGAN-layout folder. The run folder gets "
                       "config.json, environment.json, losses.jsonl, samples/ and checkpoints/. Under "
                       "'torchrun --nproc_per_node=N -m histgan train ...' it trains with DDP.",
                       epilog="Example: python -m histgan train --variant histgan_bi --data data/synthetic "
                       "--out runs/mine --preset cpu --steps 1000")
    t.add_argument("--variant", required=True, choices=("cyclegan", "cyclegan_sn", "histgan_uni", "histgan_bi"),
                   help="model: plain CycleGAN, + spectral norm, colour code for G only, for G and F")
    _add_training_flags(t, data_help="dataset root (trainA/ trainB/ [*_mask/])", data_required=True,
                        out_help="run folder (created if missing)", out_default=None, preset_default="cpu")
    t.add_argument("--num-workers", type=int, metavar="N",
                   help="DataLoader worker processes (default: 0 on CPU, 4 on CUDA)")
    t.add_argument("--resume", action="store_true", help="continue from the run's newest readable checkpoint")
    t.add_argument("--batch-size", type=int, metavar="N", help="images per step (per process)")
    t.add_argument("--image-size", type=int, metavar="PX", help="image side the data are resized to")
    t.add_argument("--lambda-hist", type=float, metavar="W", help="weight of the histogram loss, eq (6)")
    t.add_argument("--bins", type=int, metavar="K", help="histogram bins per channel")
    t.add_argument("--bandwidth", type=float, metavar="B", help="KDE bandwidth (default 2/K)")
    t.add_argument("--injection", choices=INJECTIONS, help="colour-code injection")
    t.add_argument("--generator", choices=GENERATORS, help="generator architecture: resnet or unet (skip connections)")
    t.add_argument("--gan-loss", choices=("bce", "lsgan"), help="adversarial loss: bce or lsgan (least squares)")
    t.add_argument("--ema", type=float, metavar="BETA", help="decay of the generators' weight average (0: none)")
    t.add_argument("--warmup", type=int, metavar="N", help="first steps without the adversarial terms")
    t.add_argument("--padding", choices=("zeros", "reflect"), help="border padding of the generator's 3×3 convs")
    t.add_argument("--recolour-hue", type=float, metavar="DEG",
                   help="colour augmentation: turn the Y photographs' skin hue by up to ± DEG degrees")
    t.add_argument("--recolour-chroma", type=float, metavar="F",
                   help="colour augmentation: scale their chroma by a factor in [1/F, F]")
    t.add_argument("--seed", type=int, metavar="S", help="random seed")
    t.add_argument("--amp", choices=("auto", "on", "off"), help="bf16 autocast (auto: on CUDA only)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_train)
    r = sub.add_parser("translate", help="translate an image X → Y with a reference's colours",
                       description="Translate one image with a trained run's generator G. The colours come "
                       "from a reference image (optionally masked), a histogram .npy of shape (3, K), or a colour.",
                       epilog="Example: python -m histgan translate --checkpoint runs/mine --input x.png "
                       "--reference y.png --out out.png --device cuda")
    r.add_argument("--checkpoint", required=True, metavar="RUN", help="run folder (latest checkpoint) or a .pt file")
    r.add_argument("--input", required=True, metavar="PNG", help="input image (domain X)")
    ref = r.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", action="append", metavar="PNG",
                     help="reference image whose colours to take; repeat it to mix several with --mix")
    ref.add_argument("--histogram", metavar="NPY", help="a (3, K) histogram saved with numpy.save")
    ref.add_argument("--color", metavar="HEX", help='a colour swatch, e.g. "#a07e56"')
    r.add_argument("--reference-mask", type=_reference_mask_arg, metavar="auto|none|PNG",
                   help="which pixels of --reference give its colours: auto (default: its alpha channel, else "
                   "DIR_mask/NAME next to it, else the masker's prediction), none (the whole image), or a mask "
                   "file (non-zero = foreground)")
    r.add_argument("--masker", metavar="DIR", help="masker for --reference-mask auto (default: RUN/masker/ of "
                   "--checkpoint; train one with 'python -m histgan masker')")
    r.add_argument("--size", type=int, metavar="PX", help="resize the input (and reference) to PX × PX "
                   "(default: the model's image size)")
    r.add_argument("--out", required=True, metavar="PNG", help="output image")
    r.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    r.add_argument("--edit", action="append", type=_edit_arg, metavar="NAME=VALUE",
                   help="move the colour code so the output changes by VALUE in L*a*b*: lightness (L*), redness "
                   "(a*) or yellowness (b*); repeatable, e.g. --edit lightness=+10 --edit redness=-3 (directions "
                   "are fitted on first use into RUN/edit_directions.pt; see 'python -m histgan edits fit')")
    r.add_argument("--edit-method", choices=("linear", "rbf"), default="linear",
                   help="linear directions (edits commute; default) or a curved path along an RBF field")
    r.add_argument("--mix", type=_mix_arg, metavar="T|W1,W2,...",
                   help="with repeated --reference: mix their colour codes, T in [0, 1] for two (0: the first, 1: "
                   "the second), or one weight per reference, each >= 0, summing to 1")
    r.add_argument("--refine", type=_refine_arg, default=0, metavar="N",
                   help="N steps of test-time optimisation of the colour code (network frozen) so the output's "
                   "histogram, and mean colour for --reference or --color, hit the target's (default 0: none)")
    r.add_argument("--input-mask", type=_reference_mask_arg, metavar="auto|none|PNG",
                   help="for --refine: which pixels of --input are compared with the target, like --reference-mask "
                   "(default auto: its alpha, else DIR_mask/NAME, else the masker's prediction)")
    r.set_defaults(func=_translate)


def _mix_arg(text: str) -> float | tuple[float, ...]:
    """``--mix`` of ``translate``: one number in [0, 1], or comma-separated weights summing to 1."""
    from histgan.colour_code import mix_weights  # torch, but only once the flag is used

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number T in [0, 1] or weights W1,W2,..., got {text!r}") from None
    try:
        return mix_weights(values[0], 2)[1] if len(values) == 1 else mix_weights(values, len(values))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refine_arg(text: str) -> int:
    """``--refine`` of ``translate``: a number of steps >= 0."""
    try:
        steps = int(text)
    except ValueError:
        steps = -1
    if steps < 0:
        raise argparse.ArgumentTypeError(f"must be a number of steps >= 0 (0: no refinement), got {text!r}")
    return steps


def _edit_arg(text: str) -> tuple[str, float]:
    """``--edit NAME=VALUE`` of ``translate``."""
    import math

    from histgan.edits import ATTRIBUTES  # torch, but only once the flag is used

    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE (e.g. lightness=+10), got {text!r}")
    if name.strip() not in ATTRIBUTES:
        raise argparse.ArgumentTypeError(f"unknown attribute {name.strip()!r}; use one of {', '.join(ATTRIBUTES)}")
    try:
        amount = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"VALUE must be a number (L*a*b* units), got {value!r}") from None
    if not math.isfinite(amount):
        raise argparse.ArgumentTypeError(f"VALUE must be finite, got {value!r}")
    return name.strip(), amount


def _train(args: argparse.Namespace) -> int:
    from histgan.config import make_config
    from histgan.train.loop import fit

    names = ("steps", "batch_size", "image_size", "lambda_hist", "bins", "bandwidth", "injection", "generator",
             "gan_loss", "ema", "warmup", "padding", "recolour_hue", "recolour_chroma", "seed", "num_workers")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.amp is not None:
        overrides["amp"] = {"auto": "auto", "on": True, "off": False}[args.amp]
    config = make_config(args.preset, variant=args.variant, data=args.data, run_dir=args.out,
                         device=args.device, **overrides)
    run = fit(config, resume=args.resume, progress=not args.no_progress)
    print(f"histgan: trained {config.variant} for {config.steps} steps → {run}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    import numpy as np

    from histgan.data.folders import load_image, load_mask
    from histgan.inference import load_run, reference_histogram, reference_lab
    from histgan.metrics import reference_means
    from histgan.reference_mask import REFERENCE_MASK_MODES, load_reference, resolve_reference_mask
    from histgan.images import save_image_grid

    model = load_run(args.checkpoint, device=args.device)
    size = args.size or model.config.image_size
    x = load_image(args.input, size=size).unsqueeze(0)
    hs, labs = [], []
    for path in args.reference or ():
        ref, alpha, native = load_reference(path, size)
        mode = args.reference_mask or "auto"
        if mode not in REFERENCE_MASK_MODES and tuple(load_mask(mode).shape[-2:]) != native:
            mh, mw = load_mask(mode).shape[-2:]
            raise HistganError(f"reference mask {mode} is {mw}x{mh} but the reference {path} is "
                               f"{native[1]}x{native[0]}; they must match")
        mask = resolve_reference_mask(mode, ref, alpha, path, args.masker, model.run_dir)
        hs.append(model.histogram(ref, mask))
        labs.append(reference_means(ref, mask)[0].float())
    if args.reference is not None:
        h = hs[0]
    elif args.reference_mask or args.masker:
        raise ValueError("--reference-mask and --masker need --reference")
    elif args.histogram is not None:
        if not Path(args.histogram).is_file():
            raise FileNotFoundError(f"histogram file {args.histogram} does not exist")
        try:
            arr = np.load(args.histogram, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise HistganError(f"{args.histogram} is not a readable .npy array ({exc})") from None
        h = reference_histogram(arr, model)
    else:
        h = reference_histogram(args.color, model)
    if args.input_mask and not args.refine:
        raise ValueError("--input-mask needs --refine (it chooses the pixels the refinement compares)")
    if len(hs) > 1 or args.mix is not None or args.refine:
        return _steered_translate(args, model, x, hs or [h], labs or [reference_lab(args.color, model)
                                                                     if args.color else None])
    if args.edit:
        from histgan.edits import edited_translation

        edit: dict[str, float] = {}
        for name, amount in args.edit:  # a repeated attribute adds up
            edit[name] = edit.get(name, 0.0) + amount
        save_image_grid([[edited_translation(model, x, h, edit, args.edit_method)[0]]], args.out, pad=0)
    else:
        save_image_grid([[model(x, h_ref=h)[0]]], args.out, pad=0)
    print(f"histgan: wrote {args.out}")
    return 0


def _steered_translate(args: argparse.Namespace, model, x, hs: list, labs: list) -> int:
    """``translate`` with --mix and/or --refine (:func:`histgan.colour_code.steered_code`)."""
    from histgan.colour_code import steered_code
    from histgan.inference import _edited_code
    from histgan.reference_mask import load_reference, resolve_reference_mask
    from histgan.images import save_image_grid

    if (len(hs) > 1) != (args.mix is not None):
        raise ValueError(f"--mix needs two or more --reference, and several --reference need --mix (got {len(hs)})")
    weights = None
    if args.mix is not None:
        weights = (1.0 - args.mix, args.mix) if isinstance(args.mix, float) else args.mix
        if len(weights) != len(hs):
            raise ValueError(f"--mix gives {len(weights)} weights for {len(hs)} --reference images; give one each")
    x_mask = None
    if args.refine:
        _, alpha, _ = load_reference(args.input, x.shape[-1])
        x_mask = resolve_reference_mask(args.input_mask or "auto", x, alpha, args.input, args.masker, model.run_dir)
    code = steered_code(model, x, hs, weights, args.refine, x_mask, labs)
    edit: dict[str, float] = {}
    for name, amount in args.edit or ():  # a repeated attribute adds up
        edit[name] = edit.get(name, 0.0) + amount
    code = _edited_code(model, code, edit, args.edit_method)
    save_image_grid([[model.G(x.to(model.device), code=code).clamp(-1, 1)[0].detach()]], args.out, pad=0)
    print(f"histgan: wrote {args.out}")
    return 0


# ---- evaluate -----------------------------------------------------------------------------------
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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
    from histgan.eval.evaluate import evaluate_runs

    if args.checkpoint_pairs < 0:
        raise ValueError(f"--checkpoint-pairs must be >= 0, got {args.checkpoint_pairs}")
    from histgan.reference_mask import masked_reference_root

    run_dir = next((r for r in args.runs if (Path(r) / "masker").is_dir()), None)
    data = masked_reference_root(args.data, args.out, args.reference_mask, args.masker, run_dir)
    written = evaluate_runs(args.runs, data, args.out, pairs=args.pairs, baselines=not args.no_baselines,
                            checkpoint_pairs=args.checkpoint_pairs, batch_size=args.batch_size,
                            device=args.device, size=args.size, progress=not args.no_progress)
    print(f"wrote {len(written)} files to {args.out}; table: {written['table']}")
    return 0


# ---- sweep --------------------------------------------------------------------------------------
def _add_sweep(sub: argparse._SubParsersAction) -> None:
    """Register ``sweep``."""
    s = sub.add_parser(
        "sweep", help="train a grid of runs (the training notebook via papermill) and tabulate them",
        description="Execute the training notebook (notebooks/03_training.py) with papermill for every point "
        "of a parameter grid into OUT/NAME/<run-id>/ (the run, the executed notebook, a completion marker), "
        "then evaluate each finished run on a few test pairs into OUT/NAME/sweep.csv, sweep.json and "
        "sweep.png. Rerunning skips finished runs and resumes interrupted ones.",
        epilog="Example: python -m histgan sweep --name lh --grid lambda_hist=0,2,10 --grid bins=16,32 --preset cpu "
        "--steps 300 --jobs 2 (array jobs: add --shard I/N on machine I of N, then run once more without it)")
    s.add_argument("--name", required=True, help="sweep folder name under --out")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a grid axis: a notebook parameter and its values (repeat for more axes), "
                   "e.g. lambda_hist=0,2,10 or bandwidth=None,0.05")
    s.add_argument("--variant", nargs="+", choices=("cyclegan", "cyclegan_sn", "histgan_uni", "histgan_bi"),
                   help="variants to train (a grid axis; default: the notebook's, histgan_bi)")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter shared by every run, e.g. preset=cpu (repeatable)")
    _add_training_flags(s, data_help="dataset root (default: OUT/NAME/data, generated by the first run)",
                        data_required=False, out_help="folder holding sweeps (default runs)", out_default="runs",
                        preset_default=None)
    s.add_argument("--jobs", type=_jobs_arg, default=None, metavar="N|auto",
                   help="runs at once, each its own process with cores/N threads or its own GPU (default auto: "
                   "one per GPU, else one per core)")
    s.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads per run (default cores // jobs); CPU results are bit-identical across "
                   "--jobs at equal --threads")
    s.add_argument("--shard", type=_shard_arg, default=(0, 1), metavar="I/N",
                   help="run only points I, I+N, I+2N, ... (0-based) into the shared folder, for array jobs; "
                   "collecting needs every shard finished (skip it with --no-collect)")
    s.add_argument("--notebook", metavar="PATH", help="training notebook (default notebooks/03_training.py)")
    s.add_argument("--pairs", type=int, default=4, metavar="N",
                   help="evaluate each run on the first N test inputs × N references (default 4)")
    s.add_argument("--no-collect", action="store_true", help="only run the grid, do not evaluate")
    s.add_argument("--no-progress", action="store_true", help="quiet")
    s.set_defaults(func=_sweep)


def _parse_assignment(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"{flag} takes KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _parse_value(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as histgan_bi or cpu


def _sweep(args: argparse.Namespace) -> int:
    from histgan.book import sweep

    grid = {}
    for item in args.grid:
        key, values = _parse_assignment(item, "--grid")
        grid[key] = [_parse_value(v.strip()) for v in values.split(",")]
    if args.variant:
        grid = {"variant": args.variant, **grid}
    if not grid:
        raise ValueError("give at least one --grid KEY=V1,V2,... or --variant")
    base = {k: _parse_value(v) for k, v in (_parse_assignment(p, "--param") for p in args.param)}
    for flag in ("preset", "device"):
        value = getattr(args, flag)
        if value is None or (flag == "device" and value == "auto"):  # the notebook's own default
            continue
        if flag in base and base[flag] != value:
            raise ValueError(f"--{flag} {value} and --param {flag}={base[flag]} disagree; give one of them")
        base[flag] = value
    notebook = args.notebook or sweep.DEFAULT_NOTEBOOK
    runs = sweep.run_sweep(args.name, grid, base, notebook=notebook, out=args.out, data=args.data,
                           steps=args.steps, progress=not args.no_progress, jobs=args.jobs, threads=args.threads,
                           shard=args.shard)
    print(f"histgan: {len(runs)} run(s) in {Path(args.out) / args.name}")
    if not args.no_collect:
        from histgan.eval.figures import save_figure

        rows = sweep.collect(args.name, out=args.out, data=args.data, pairs=args.pairs)
        save_figure(sweep.plot_sweep(rows), Path(args.out) / args.name / "sweep.png")
        for r in rows:
            print(f"  {r['run_id']}: mean ΔE {r['delta_e_mean']:.2f} ({r['grade_of_mean']})")
        print(f"histgan: wrote sweep.csv, sweep.json and sweep.png in {Path(args.out) / args.name}")
    return 0


# ---- masker (reference foregrounds) --------------------------------------------------------------
def _reference_mask_arg(text: str) -> str:
    """``--reference-mask`` of ``translate``: auto, none, or a mask file."""
    if text in ("auto", "none") or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"must be auto, none or an existing mask file, got {text!r}")


def _reference_masks_arg(text: str) -> str:
    """``--reference-mask`` of ``evaluate``: auto, none, or a folder of masks."""
    if text in ("auto", "none") or Path(text).is_dir():
        return text
    raise argparse.ArgumentTypeError(f"must be auto, none or an existing folder of masks, got {text!r}")


def _add_masker(sub: argparse._SubParsersAction) -> None:
    """Register ``masker``."""
    m = sub.add_parser(
        "masker", help="train the skin segmenter that masks references without a mask (resumable)",
        description="Train a small U-Net on DATA/trainB + trainB_mask (with new backgrounds, geometry and "
        "colour jitter) that predicts the skin of a reference photograph, for --reference-mask auto. OUT gets "
        "config.json, environment.json, metrics.json (IoU on testB when it has masks) and checkpoints/. "
        "Put it in RUN/masker to be found by 'translate --checkpoint RUN'.",
        epilog="example: python -m histgan masker --data data/synthetic --out runs/mine/masker --steps 500")
    m.add_argument("--data", required=True, metavar="DIR", help="dataset root with trainB/ and trainB_mask/")
    m.add_argument("--out", required=True, metavar="DIR", help="masker folder (created if missing), e.g. RUN/masker")
    m.add_argument("--steps", type=int, metavar="N", help="training steps (default 500, MaskerConfig.steps)")
    m.add_argument("--batch-size", type=int, metavar="N", help="images per step (default 16)")
    m.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    m.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cpu, cuda, ...")
    m.add_argument("--resume", action="store_true", help="continue from the folder's newest readable checkpoint")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    m.set_defaults(func=_masker)


def _masker(args: argparse.Namespace) -> int:
    import json

    from histgan.train.masker import fit_masker

    given = {k: getattr(args, k) for k in ("steps", "batch_size", "seed") if getattr(args, k) is not None}
    out = fit_masker(args.data, args.out, device=args.device, resume=args.resume, progress=not args.no_progress,
                     **given)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    iou = metrics.get("iou_testB")
    print(f"histgan: trained the masker for {metrics['steps']} steps → {out}"
          + ("" if iou is None else f"; IoU on testB {iou:.3f}"))
    return 0


# ---- edit directions in the colour code's space -------------------------------------------------
def _add_edits(sub: argparse._SubParsersAction) -> None:
    """Register ``edits fit``."""
    p = sub.add_parser("edits", help="edit directions in the colour code's space (lighter, redder, more yellow)",
                       description="Edit directions for 'translate --edit'.",
                       epilog="Example: python -m histgan edits fit runs/mine")
    edits_sub = p.add_subparsers(dest="edits_command", metavar="EDITS_COMMAND", parser_class=_Parser)
    edits_sub.required = True
    f = edits_sub.add_parser(
        "fit", help="fit linear and RBF edit directions on a run's training references",
        description="Encode the training references of Y (DATA/trainB with its masks, plus colour-shifted "
        "copies), regress their colour codes on their mean L*, a*, b* (linear directions) and fit RBF fields "
        "predicting L*, a*, b* from the code; write RUN/edit_directions.pt.",
        epilog="Example: python -m histgan edits fit runs/mine --data data/synthetic")
    f.add_argument("run", metavar="RUN", help="run folder (its latest checkpoint)")
    f.add_argument("--data", metavar="DIR", help="dataset root with trainB/ (default: the run's training data)")
    f.add_argument("--augment", type=_positive_int, default=4, metavar="N",
                   help="colour-shifted copies per reference (default 4)")
    f.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    f.set_defaults(func=_edits_fit)


def _edits_fit(args: argparse.Namespace) -> int:
    from histgan.edits import ATTRIBUTES, DIRECTIONS_FILE, fit_directions, save_directions
    from histgan.inference import load_run

    model = load_run(args.run, device=args.device)
    d = fit_directions(model, args.data, augment=args.augment)
    save_directions(d, model.run_dir / DIRECTIONS_FILE)
    r2 = ", ".join(f"{a} {float(v):.2f}" for a, v in zip(ATTRIBUTES, d.rbf_r2))
    print(f"histgan: fitted edit directions on {d.n_references} references (RBF leave-one-out R²: {r2}) "
          f"→ {model.run_dir / DIRECTIONS_FILE}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="histgan",
        description="Colour-controlled unpaired image translation (histogram-conditioned CycleGAN).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_data, _add_train, _add_evaluate, _add_sweep, _add_masker, _add_edits):
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
