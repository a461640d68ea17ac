"""``histgan data synth``: write the synthetic knee benchmark."""

from __future__ import annotations

import argparse

from histgan.cli.arguments import add_command_group

__all__ = ["add_data"]


def add_data(sub: argparse._SubParsersAction) -> None:
    """Register ``data ...`` subcommands."""
    from histgan.data.sampling import DEFAULT_DOMAIN, DOMAINS  # numpy only
    from histgan.data.synthetic import PRESETS

    data_sub = add_command_group(sub, "data", "data_command", help="make or inspect datasets",
                                 description="Make or inspect datasets.",
                                 epilog="Example: python -m histgan data synth --out data/synthetic --preset cpu")
    s = data_sub.add_parser(
        "synth", help="write the synthetic knee benchmark (X: grey renders, Y: skin-toned photos)",
        description="Write the synthetic knee benchmark in the CycleGAN layout (trainA/ trainB/ testA/ "
        "testB/, PNG) with *_mask/ folders (255 = foreground) and meta.json (parameters of every "
        "image; ground truth for every test pair). Resumable: rerun the same command after an "
        "interruption to complete the set.",
        epilog="Example: python -m histgan data synth --out data/synthetic --preset cpu")
    s.add_argument("--out", required=True, metavar="DIR", help="destination folder (created if missing)")
    sizes = "; ".join(f"{name} = {d.size}px, {d.n_train[0]}/{d.n_train[1]} train, {d.n_test[0]}/{d.n_test[1]} test"
                      for name, d in PRESETS.items())
    s.add_argument("--preset", choices=tuple(PRESETS), default="cpu",
                   help=f"sizes to start from (A/B counts): {sizes}; default cpu, quick is for tests")
    s.add_argument("--size", type=int, metavar="PX", help="image side in pixels (>= 16; overrides the preset)")
    s.add_argument("--n-train", type=int, nargs="+", metavar="N",
                   help="training images: one count for both domains, or two (A then B); overrides the preset")
    s.add_argument("--n-test", type=int, nargs="+", metavar="N",
                   help="test images: one count for both domains, or two (A then B); overrides the preset")
    s.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    s.add_argument("--domain", choices=DOMAINS, default=DEFAULT_DOMAIN,
                   help="Y images: photo = photographs (skin texture, subsurface look, sheen, textured scenes, cast "
                   "shadow, camera; the default, the book's benchmark); plain = the simulator's shading times a "
                   "skin colour on a smooth backdrop (the earlier benchmark)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=_data_synth)


def _data_synth(args: argparse.Namespace) -> int:
    from histgan.data.synthetic import PRESETS, load_meta, write_dataset

    preset = PRESETS[args.preset]
    counts = {}
    for flag in ("n_train", "n_test"):
        n = getattr(args, flag)
        if n is not None and len(n) > 2:
            raise ValueError(f"--{flag.replace('_', '-')} takes one or two counts, got {len(n)}")
        counts[flag] = getattr(preset, flag) if n is None else (n[0], n[-1])
    out = write_dataset(args.out, size=preset.size if args.size is None else args.size,
                        seed=args.seed, progress=not args.no_progress, domain=args.domain, **counts)
    n_images = sum(len(v) for v in load_meta(out)["images"].values())
    print(f"wrote {n_images} images (+ masks, meta.json) to {out}")
    return 0
