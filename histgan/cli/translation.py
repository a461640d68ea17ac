"""Using a trained run: ``translate`` (an image with a reference's colours) and ``edits fit`` (edit directions)."""

from __future__ import annotations

import argparse
from pathlib import Path

from histgan.cli.arguments import add_command_group, positive_int

__all__ = ["add_translate", "add_edits"]


# ---- translate ----------------------------------------------------------------------------------
def add_translate(sub: argparse._SubParsersAction) -> None:
    """Register ``translate``."""
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
                   help="which pixels of --input are its foreground, like --reference-mask (default auto: its alpha, "
                   "else DIR_mask/NAME, else the masker's prediction): compared with the target by --refine, and read "
                   "by a run trained with --mask-input")
    r.set_defaults(func=_translate)


def _reference_mask_arg(text: str) -> str:
    """``--reference-mask`` of ``translate``: auto, none, or a mask file."""
    from histgan.reference_mask import REFERENCE_MASK_MODES  # torch, but only once the flag is used

    if text in REFERENCE_MASK_MODES or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"must be auto, none or an existing mask file, got {text!r}")


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


def _edit_amounts(edits: list[tuple[str, float]] | None) -> dict[str, float]:
    """``--edit NAME=VALUE`` pairs → ``{attribute: amount}``; a repeated attribute adds up."""
    amounts: dict[str, float] = {}
    for name, amount in edits or ():
        amounts[name] = amounts.get(name, 0.0) + amount
    return amounts


def _translate(args: argparse.Namespace) -> int:
    from histgan.data.image_files import load_image
    from histgan.images import save_image_grid
    from histgan.inference import load_histogram, load_run, reference_histogram, reference_lab, resolve_input_mask
    from histgan.metrics import reference_means
    from histgan.reference_mask import load_masked_reference, load_reference

    model = load_run(args.checkpoint, device=args.device)
    size = args.size or model.config.image_size
    x = load_image(args.input, size=size).unsqueeze(0)
    hs, labs, backdrops = [], [], []
    for path in args.reference or ():
        ref, mask = load_masked_reference(path, size, args.reference_mask or "auto", args.masker, model.run_dir)
        hs.append(model.histogram(ref, mask))
        labs.append(reference_means(ref, mask)[0].float())
        backdrops.append(model.backdrop(ref, mask))  # None unless the run was trained with a backdrop code
    if args.reference is not None:
        h = hs[0]
    elif args.reference_mask or args.masker:
        raise ValueError("--reference-mask and --masker need --reference")
    elif args.histogram is not None:
        h = reference_histogram(load_histogram(args.histogram), model)
    else:
        h = reference_histogram(args.color, model)
    if args.input_mask and not args.refine and not model.reads_mask:
        raise ValueError("--input-mask needs --refine (it chooses the pixels the refinement compares) or a run "
                         "trained with --mask-input")
    x_mask = None
    if args.refine or model.reads_mask:
        _, alpha, _ = load_reference(args.input, x.shape[-1])
        x_mask = resolve_input_mask(model, x, args.input_mask or "auto", alpha, args.input, args.masker)
    if len(hs) > 1 or args.mix is not None or args.refine:
        return _steered_translate(args, model, x, hs or [h], labs or [reference_lab(args.color, model)
                                                                     if args.color else None], x_mask)
    if args.edit:
        from histgan.edits import edited_translation

        edit = _edit_amounts(args.edit)
        save_image_grid([[edited_translation(model, x, h, edit, args.edit_method, x_mask=x_mask)[0]]], args.out, pad=0)
    else:
        save_image_grid([[model(x, x_mask, h_ref=h, backdrop=backdrops[0] if backdrops else None)[0]]], args.out,
                        pad=0)
    print(f"histgan: wrote {args.out}")
    return 0


def _steered_translate(args: argparse.Namespace, model, x, hs: list, labs: list, x_mask=None) -> int:
    """``translate`` with --mix and/or --refine (:func:`histgan.colour_code.steered_code`)."""
    from histgan.colour_code import steered_code
    from histgan.inference import edited_code
    from histgan.images import save_image_grid

    if (len(hs) > 1) != (args.mix is not None):
        raise ValueError(f"--mix needs two or more --reference, and several --reference need --mix (got {len(hs)})")
    weights = None
    if args.mix is not None:
        weights = (1.0 - args.mix, args.mix) if isinstance(args.mix, float) else args.mix
        if len(weights) != len(hs):
            raise ValueError(f"--mix gives {len(weights)} weights for {len(hs)} --reference images; give one each")
    code = steered_code(model, x, hs, weights, args.refine, x_mask, labs)
    code = edited_code(model, code, _edit_amounts(args.edit), args.edit_method)
    out = model.G(x.to(model.device), code=code, **model.mask_kwargs(x_mask)).clamp(-1, 1)
    save_image_grid([[out[0].detach()]], args.out, pad=0)
    print(f"histgan: wrote {args.out}")
    return 0


# ---- edit directions in the colour code's space -------------------------------------------------
def add_edits(sub: argparse._SubParsersAction) -> None:
    """Register ``edits fit``."""
    edits_sub = add_command_group(sub, "edits", "edits_command",
                                  help="edit directions in the colour code's space (lighter, redder, more yellow)",
                                  description="Edit directions for 'translate --edit'.",
                                  epilog="Example: python -m histgan edits fit runs/mine")
    f = edits_sub.add_parser(
        "fit", help="fit linear and RBF edit directions on a run's training references",
        description="Encode the training references of Y (DATA/trainB with its masks, plus colour-shifted "
        "copies), regress their colour codes on their mean L*, a*, b* (linear directions) and fit RBF fields "
        "predicting L*, a*, b* from the code; write RUN/edit_directions.pt.",
        epilog="Example: python -m histgan edits fit runs/mine --data data/synthetic")
    f.add_argument("run", metavar="RUN", help="run folder (its latest checkpoint)")
    f.add_argument("--data", metavar="DIR", help="dataset root with trainB/ (default: the run's training data)")
    f.add_argument("--augment", type=positive_int, default=4, metavar="N",
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
