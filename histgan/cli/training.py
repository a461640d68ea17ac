"""The commands that train: ``train`` (one model), ``sweep`` (a grid of runs) and ``masker`` (the reference masker)."""

from __future__ import annotations

import argparse
from pathlib import Path

from histgan.cli.arguments import add_training_flags, positive_int
from histgan.config import BACKDROPS, GAN_LOSSES, GENERATORS, HIST_KINDS, INJECTIONS, PADDINGS, VARIANTS

__all__ = ["add_train", "add_sweep", "add_masker"]


# ---- train --------------------------------------------------------------------------------------
def add_train(sub: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    t = sub.add_parser("train", help="train one of the four models (resumable, DDP under torchrun)",
                       description="Train a model on an unpaired CycleGAN-layout folder. The run folder gets "
                       "config.json, environment.json, losses.jsonl, samples/ and checkpoints/. Under "
                       "'torchrun --nproc_per_node=N -m histgan train ...' it trains with DDP.",
                       epilog="Example: python -m histgan train --variant histgan_bi --data data/synthetic "
                       "--out runs/mine --preset cpu --steps 1000")
    t.add_argument("--variant", required=True, choices=VARIANTS,
                   help="model: plain CycleGAN, + spectral norm, colour code for G only, for G and F")
    add_training_flags(t, data_help="dataset root (trainA/ trainB/ [*_mask/])", data_required=True,
                       out_help="run folder (created if missing)", out_default=None, preset_default="cpu")
    t.add_argument("--num-workers", type=int, metavar="N",
                   help="DataLoader worker processes (default: 0 on CPU, 4 on CUDA)")
    t.add_argument("--resume", action="store_true", help="continue from the run's newest readable checkpoint")
    t.add_argument("--batch-size", type=int, metavar="N", help="images per step (per process)")
    t.add_argument("--image-size", type=int, metavar="PX", help="image side the data are resized to")
    t.add_argument("--lambda-hist", type=float, metavar="W", help="weight of the histogram loss, eq (6)")
    t.add_argument("--lambda-mean", type=float, metavar="W",
                   help="weight of the mean-colour term: ΔE of the output's mean L*a*b* vs the reference's")
    t.add_argument("--hist-kind", choices=HIST_KINDS, help="histogram distance of eq (6)")
    t.add_argument("--bins", type=int, metavar="K", help="histogram bins per channel")
    t.add_argument("--bandwidth", type=float, metavar="B", help="KDE bandwidth (default 2/K)")
    t.add_argument("--injection", choices=INJECTIONS, help="colour-code injection")
    t.add_argument("--generator", choices=GENERATORS, help="generator architecture: resnet or unet (skip connections)")
    t.add_argument("--gan-loss", choices=GAN_LOSSES, help="adversarial loss: bce or lsgan (least squares)")
    t.add_argument("--ema", type=float, metavar="BETA", help="decay of the generators' weight average (0: none)")
    t.add_argument("--warmup", type=int, metavar="N", help="first steps without the adversarial terms")
    t.add_argument("--padding", choices=PADDINGS, help="border padding of the generator's 3×3 convs")
    t.add_argument("--colour-head", action="store_true", default=None,
                   help="let the colour code scale and shift the output's R, G, B before the tanh")
    t.add_argument("--code-moments", action="store_true", default=None,
                   help="append the reference histogram's per-channel mean and std to the colour code")
    t.add_argument("--backdrop-code", choices=BACKDROPS,
                   help="append the reference background's mean and spread to the colour code, so that the "
                        "output's surroundings follow the reference's: read by the middle layer only, by the "
                        "decoder too (not the colour head), by every layer that reads the code, or by the "
                        "middle layer and, behind a per-pixel gate, a backdrop FiLM in every decoder level")
    t.add_argument("--mask-input", action="store_true", default=None,
                   help="give both generators their input's foreground mask as a fourth channel (every "
                        "translation then needs the input's mask)")
    t.add_argument("--code-lr", type=float, metavar="F",
                   help="learning-rate factor of the colour code's path (histogram encoders, FiLM projections)")
    t.add_argument("--no-encoder-sn", dest="encoder_sn", action="store_false", default=None,
                   help="no spectral norm in the histogram encoder (the rest of G keeps it)")
    t.add_argument("--recolour-hue", type=float, metavar="DEG",
                   help="colour augmentation: turn the Y photographs' skin hue by up to ± DEG degrees")
    t.add_argument("--recolour-chroma", type=float, metavar="F",
                   help="colour augmentation: scale their chroma by a factor in [1/F, F]")
    t.add_argument("--identity-hue", type=float, metavar="DEG",
                   help="colour-restoring identity: G(y with its skin's hue turned by up to ± DEG, h(y)) ≈ y")
    t.add_argument("--identity-chroma", type=float, metavar="F",
                   help="... and its chroma scaled by a factor in [1/F, F]")
    t.add_argument("--seed", type=int, metavar="S", help="random seed")
    t.add_argument("--amp", choices=("auto", "on", "off"), help="bf16 autocast (auto: on CUDA only)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from histgan.config import make_config
    from histgan.train.loop import fit

    names = ("steps", "batch_size", "image_size", "lambda_hist", "lambda_mean", "hist_kind", "bins", "bandwidth",
             "injection", "generator", "gan_loss", "ema", "warmup", "padding", "colour_head", "encoder_sn",
             "code_lr", "code_moments", "backdrop_code", "mask_input", "recolour_hue", "recolour_chroma", "identity_hue", "identity_chroma", "seed", "num_workers")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.amp is not None:
        overrides["amp"] = {"auto": "auto", "on": True, "off": False}[args.amp]
    config = make_config(args.preset, variant=args.variant, data=args.data, run_dir=args.out,
                         device=args.device, **overrides)
    run = fit(config, resume=args.resume, progress=not args.no_progress)
    print(f"histgan: trained {config.variant} for {config.steps} steps → {run}")
    return 0


# ---- sweep --------------------------------------------------------------------------------------
def add_sweep(sub: argparse._SubParsersAction) -> None:
    """Register ``sweep``."""
    s = sub.add_parser(
        "sweep", help="train a grid of runs (the training notebook via papermill) and tabulate them",
        description="Execute the training notebook (notebooks/03_training.py) with papermill for every point "
        "of a parameter grid into OUT/NAME/<run-id>/ (the run, the executed notebook, a completion marker), "
        "each run then evaluated on a few test pairs by its own job, then tabulate the finished runs into "
        "OUT/NAME/sweep.csv, sweep.json and sweep.png. Rerunning skips finished runs and resumes interrupted ones.",
        epilog="Example: python -m histgan sweep --name lh --grid lambda_hist=0,2,10 --grid bins=16,32 --preset cpu "
        "--steps 300 --jobs 2 (array jobs: add --shard I/N on machine I of N, then run once more without it)")
    s.add_argument("--name", required=True, help="sweep folder name under --out")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a grid axis: a notebook parameter and its values (repeat for more axes), "
                   "e.g. lambda_hist=0,2,10 or bandwidth=None,0.05")
    s.add_argument("--variant", nargs="+", choices=VARIANTS,
                   help="variants to train (a grid axis; default: the notebook's, histgan_bi)")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter shared by every run, e.g. preset=cpu (repeatable)")
    add_training_flags(s, data_help="dataset root (default: OUT/NAME/data, generated by the first run)",
                       data_required=False, out_help="folder holding sweeps (default runs)", out_default="runs",
                       preset_default=None)
    s.add_argument("--jobs", type=_jobs_arg, default=None, metavar="N|auto",
                   help="runs at once, each its own process with cores/N threads or its own GPU (default auto: "
                   "one per GPU, else one per core)")
    s.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads per run (default cores // jobs); CPU results are bit-identical across "
                   "--jobs at equal --threads")
    s.add_argument("--shard", type=_shard_arg, default=(0, 1), metavar="I/N",
                   help="run only points I, I+N, I+2N, ... (0-based) into the shared folder, for array jobs; "
                   "collecting needs every shard finished (skip it with --no-collect)")
    s.add_argument("--notebook", metavar="PATH", help="training notebook (default notebooks/03_training.py)")
    s.add_argument("--pairs", type=positive_int, default=4, metavar="N",
                   help="each run's job evaluates it on the first N test inputs × N references once trained, "
                   "and collecting reads that (default 4)")
    s.add_argument("--no-collect", action="store_true",
                   help="only run the grid (each run still evaluated by its job), do not tabulate")
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
                           shard=args.shard, pairs=args.pairs)
    print(f"histgan: {len(runs)} run(s) in {Path(args.out) / args.name}")
    if not args.no_collect:
        from histgan.io import save_figure

        rows = sweep.collect(args.name, out=args.out, data=args.data, pairs=args.pairs)
        save_figure(sweep.plot_sweep(rows), Path(args.out) / args.name / "sweep.png")
        for r in rows:
            print(f"  {r['run_id']}: mean ΔE {r['delta_e_mean']:.2f} ({r['grade_of_mean']})")
        print(f"histgan: wrote sweep.csv, sweep.json and sweep.png in {Path(args.out) / args.name}")
    return 0


def _jobs_arg(text: str) -> int | None:
    return None if text == "auto" else positive_int(text)


def _shard_arg(text: str) -> tuple[int, int]:
    from histgan.train.parallel import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None


# ---- masker (reference foregrounds) --------------------------------------------------------------
def add_masker(sub: argparse._SubParsersAction) -> None:
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


