"""Using a trained run: :func:`load_run` → :class:`Translator`, and :func:`translate` on one image.

A reference can be an image, an explicit histogram ``(3, K)`` (a ``.npy`` file or array, as HistoGAN
takes a target histogram), or a colour swatch (``"#a07e56"``), whose histogram is the soft histogram
of a one-pixel image of that colour. An image's histogram is taken over its foreground, chosen by
``reference_mask`` (:mod:`histgan.reference_mask`: ``"auto"`` = alpha, else mask file, else the
masker of :mod:`histgan.train.masker`; ``"none"`` = the whole image; or a mask).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from histgan.train.checkpoint import load_checkpoint
from histgan.config import TrainConfig
from histgan.errors import HistganError
from histgan.losses import masked_histogram
from histgan.networks.conditioning import backdrop_descriptor
from histgan.networks.generator import build_models, mask_kwargs
from histgan.networks.weight_average import load_average
from histgan.reference_mask import resolve_reference_mask
from histgan.train.runtime import select_device
from histgan.images import to_uint8

__all__ = ["Translator", "load_run", "translate", "resolve_input_mask", "colour_histogram", "colour_image",
           "reference_histogram", "reference_inputs", "reference_lab", "load_histogram", "edited_code"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


class Translator:
    """The generators of a trained run, ready to translate X → Y with reference colours.

    Attributes:
        G: generator X → Y (eval mode). F: generator Y → X. config: the run's
        :class:`~histgan.config.TrainConfig`. step: the checkpoint's training step. run_dir: the
        run folder it was loaded from (where ``RUN/masker/`` is looked for), or None.
    """

    def __init__(self, G: nn.Module, F: nn.Module, config: TrainConfig, step: int, device: torch.device,
                 run_dir: Path | None = None) -> None:
        self.G, self.F, self.config, self.step, self.device = G.eval(), F.eval(), config, step, device
        self.run_dir = run_dir

    def backdrop(self, ref: Tensor, ref_mask: Tensor | None) -> Tensor | None:
        """Backdrop descriptors ``(N, 7)`` of references over what lies outside their masks, for a model
        trained with ``backdrop_code``; None for any other model or without masks."""
        if not getattr(self.G, "backdrop", False) or ref_mask is None:
            return None
        return backdrop_descriptor(ref.to(self.device).float(), ref_mask.to(self.device))

    def histogram(self, ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
        """Soft histogram ``(N, 3, K)`` of references ``(N, 3, H, W)`` over their masks (eq 3–5)."""
        return masked_histogram(ref.to(self.device), None if ref_mask is None else ref_mask.to(self.device),
                                self.config.bins, self.config.bandwidth)

    @torch.no_grad()
    def __call__(self, x: Tensor, x_mask: Tensor | None = None, ref: Tensor | None = None,
                 ref_mask: Tensor | None = None, h_ref: Tensor | None = None,
                 backdrop: Tensor | None = None) -> Tensor:
        """Translate ``x (N, 3, H, W)`` in [-1, 1] to Y with the reference's colours.

        Args:
            x: input images; sides divisible by ``2 ** n_down``.
            x_mask: the inputs' masks ``(N, 1, H, W)``: required by a model trained with ``mask_input``
                (:attr:`reads_mask`), unused by any other (accepted for a uniform model protocol).
            ref: reference images ``(N, 3, H', W')`` (or ``(1, ...)``, used for every input).
            ref_mask: the references' masks; the histogram is taken over the foreground only, and a
                generator trained with ``backdrop_code`` also reads what lies outside it
                (:func:`~histgan.networks.conditioning.backdrop_descriptor`; without a mask it is told
                "no backdrop given" and makes one of its own).
            h_ref: a histogram ``(N, 3, K)`` or ``(3, K)`` instead of ``ref``.
            backdrop: with ``h_ref``, the reference's backdrop descriptor ``(N, 7)`` or ``(1, 7)``
                (:func:`reference_inputs`), for a generator trained with ``backdrop_code``.

        Returns:
            ``(N, 3, H, W)`` tensor in [-1, 1] on the translator's device. An unconditioned
            generator (``cyclegan``, ``cyclegan_sn``) ignores the reference.
        """
        x = x.to(self.device).float()
        if h_ref is None and ref is not None and self.G.conditioned:
            h_ref = self.histogram(ref.float(), ref_mask)
        if not getattr(self.G, "backdrop", False):
            backdrop = None  # a model trained without it reads no backdrop (as an unconditioned one no reference)
        elif backdrop is None and ref is not None:
            backdrop = self.backdrop(ref, ref_mask)
        if backdrop is not None:
            backdrop = backdrop.to(self.device).float()
            backdrop = backdrop.expand(len(x), -1) if len(backdrop) == 1 else backdrop
        if self.G.conditioned:
            if h_ref is None:
                raise ValueError(f"the {self.config.variant} generator needs a reference (ref or h_ref)")
            h_ref = h_ref.to(self.device).float()
            h_ref = h_ref.unsqueeze(0) if h_ref.dim() == 2 else h_ref
            h_ref = h_ref.expand(len(x), -1, -1) if len(h_ref) == 1 else h_ref
        return self.G(x, h_ref, None, backdrop, **self.mask_kwargs(x_mask)).clamp(-1, 1)

    @property
    def reads_mask(self) -> bool:
        """Whether the generators were trained with the input's mask as a fourth channel (``mask_input``)."""
        return bool(getattr(self.G, "mask_input", False))

    def mask_kwargs(self, x_mask: Tensor | None) -> dict[str, Tensor]:
        """``{"mask": x_mask}`` on the translator's device for a model that reads the input's mask (an error
        naming what to pass when it is missing), ``{}`` for any other."""
        if self.reads_mask and x_mask is None:
            raise HistganError(f"the run {self.run_dir or ''} was trained with mask_input: its generators read the "
                               "input's foreground mask; pass x_mask (or, to translate(), input_mask: a mask, or "
                               "'auto' for the input's alpha channel or the masker's prediction)")
        return mask_kwargs(self.G, None if x_mask is None else x_mask.to(self.device).float())


def _resolve_checkpoint(run_dir: Path, checkpoint: str | int | os.PathLike) -> Path:
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
        return run_dir / "checkpoints" / f"step_{checkpoint:06d}.pt"
    if checkpoint == "latest":
        return run_dir / "checkpoints" / "latest.pt"
    path = Path(checkpoint)
    return path if path.is_absolute() or path.exists() else run_dir / "checkpoints" / path


def load_run(run_dir: str | os.PathLike, checkpoint: str | int | os.PathLike = "latest",
             device: str | torch.device = "cpu") -> Translator:
    """Load a run's generators from one of its checkpoints (their weight averages when the run kept
    them, ``TrainConfig.ema``).

    Args:
        run_dir: a run directory written by :func:`histgan.train.loop.fit`, or a checkpoint ``.pt`` file.
        checkpoint: ``"latest"``, a step number, or a file name/path of a checkpoint.
        device: where to put the networks (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    Raises:
        FileNotFoundError: no such run directory or checkpoint.
        HistganError: the checkpoint is unreadable or not a histgan checkpoint, or the device
            does not exist on this machine.
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        path = run_dir
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    elif not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    else:
        path = _resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    if "config" not in state or "models" not in state:
        raise HistganError(f"checkpoint {path} is not a histgan training checkpoint (no config/models)")
    config = TrainConfig.from_dict(state["config"])
    models = build_models(config)
    device = select_device(str(device))
    for name in ("G", "F"):
        models[name].load_state_dict(state["models"][name])
        if "ema" in state:  # trained with a weight average (config.ema): translate with the average
            load_average(models[name], state["ema"][name])
        models[name].to(device)
    return Translator(models["G"], models["F"], config, int(state.get("step", 0)), device, run_dir)


def colour_histogram(colour: str, bins: int, bandwidth: float | None = None) -> Tensor:
    """Histogram ``(3, K)`` of a one-colour swatch, e.g. ``"#a07e56"`` (the soft histogram of one pixel)."""
    return masked_histogram(colour_image(colour), None, bins, bandwidth)[0]


def colour_image(colour: str) -> Tensor:
    """A one-pixel image ``(1, 3, 1, 1)`` in [-1, 1] of a hex colour such as ``"#a07e56"``."""
    m = _HEX.match(colour.strip()) if isinstance(colour, str) else None
    if m is None:
        raise ValueError(f"colour must be a hex string like '#a07e56', got {colour!r}")
    rgb = torch.tensor([int(m.group(1)[i:i + 2], 16) for i in (0, 2, 4)], dtype=torch.float32)
    return (rgb / 127.5 - 1.0).reshape(1, 3, 1, 1)


def _as_tensor(image: Any, what: str) -> tuple[Tensor, bool]:
    """PIL image / ``(3, H, W)`` / ``(N, 3, H, W)`` tensor → ``(N, 3, H, W)`` in [-1, 1]; and whether PIL."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0), True
    if isinstance(image, Tensor):
        t = image.float()
        t = t.unsqueeze(0) if t.dim() == 3 else t
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"{what} must be (3, H, W) or (N, 3, H, W), got shape {tuple(image.shape)}")
        return t, False
    raise ValueError(f"{what} must be a PIL image or a tensor, got {type(image).__name__}")


def _alpha(image: Any) -> Tensor | None:
    """A PIL image's alpha channel as a mask ``(1, 1, H, W)`` (alpha >= 128 is foreground), or None."""
    if not hasattr(image, "convert"):
        return None
    from histgan.data.image_files import to_float

    alpha = to_float(image)[1]
    return None if alpha is None else torch.from_numpy((alpha >= 0.5).astype(np.float32))[None, None]


def load_histogram(path: str | os.PathLike) -> np.ndarray:
    """A histogram ``(3, K)`` saved with ``numpy.save``, for :func:`reference_histogram` (which checks its shape).

    Raises:
        HistganError: the file does not exist or is not a readable ``.npy`` array (naming it).
    """
    if not Path(path).is_file():
        raise HistganError(f"histogram file {path} does not exist; give a (3, K) array saved with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise HistganError(f"{path} is not a readable .npy array ({exc}); save the (3, K) histogram with "
                           "numpy.save") from None


def reference_histogram(reference: Any, model: Translator, reference_mask: Any = "auto",
                        masker: Any = None) -> Tensor:
    """A reference in any accepted form → histogram ``(1, 3, K)`` for ``model`` (the first half of
    :func:`reference_inputs`, which documents the forms)."""
    return reference_inputs(reference, model, reference_mask, masker)[0]


def reference_inputs(reference: Any, model: Translator, reference_mask: Any = "auto",
                     masker: Any = None) -> tuple[Tensor, Tensor | None]:
    """A reference in any accepted form → its histogram ``(1, 3, K)`` for ``model``, and its backdrop
    descriptor ``(1, 7)`` (:func:`histgan.networks.conditioning.backdrop_descriptor`) or None.

    Accepts a PIL image or tensor, a hex colour string, or a histogram (NumPy array or tensor of
    shape ``(3, K)`` with ``K = model.config.bins``). An image's histogram is taken over the mask
    that ``reference_mask`` chooses (:func:`histgan.reference_mask.resolve_reference_mask`; ``"auto"``
    uses a PIL image's alpha, else ``masker`` or ``model.run_dir/masker/``); the other forms ignore it.
    The backdrop is that of the pixels outside the mask, given only for an image with a mask and a
    model trained with ``backdrop_code``; a colour, a histogram or an unmasked image give None ("no
    backdrop given": the model paints one of its own).
    """
    K = model.config.bins
    if isinstance(reference, str):
        return colour_histogram(reference, K, model.config.bandwidth).unsqueeze(0), None
    if isinstance(reference, np.ndarray) or (isinstance(reference, Tensor) and reference.dim() == 2):
        h = torch.as_tensor(np.asarray(reference, dtype=np.float32) if isinstance(reference, np.ndarray)
                            else reference.float())
        if tuple(h.shape) != (3, K):
            raise ValueError(f"a reference histogram must have shape (3, {K}) for this model, got {tuple(h.shape)}")
        if not torch.isfinite(h).all() or float(h.min()) < 0:
            raise ValueError("a reference histogram must hold finite, non-negative bin masses")
        return h.unsqueeze(0), None
    ref, _ = _as_tensor(reference, "reference")
    mask = resolve_reference_mask(reference_mask, ref, alpha=_alpha(reference), masker=masker, run_dir=model.run_dir)
    return model.histogram(ref, mask), model.backdrop(ref, None if mask is None else mask.to(ref))


def translate(x: Any, reference: Any, model: Translator | str | os.PathLike, reference_mask: Any = "auto",
              masker: Any = None, edit: dict[str, float] | None = None, edit_method: str = "linear",
              mix: float | Sequence[float] | None = None, refine: int = 0, input_mask: Any = "auto") -> Any:
    """Translate one image (or a batch) X → Y with a reference's colours.

    Args:
        x: a PIL image, a ``(3, H, W)`` or ``(N, 3, H, W)`` tensor in [-1, 1].
        reference: a PIL image or tensor, a histogram ``(3, K)`` (array or tensor), or a hex colour.
        model: a :class:`Translator` or a run directory / checkpoint path for :func:`load_run`.
        reference_mask: which pixels of a reference image give its colours: ``"auto"`` (alpha, else
            the masker's prediction; an error if there is no masker), ``"none"`` (the whole image),
            or a mask (PIL ``L`` image, ``(H, W)`` tensor, or a mask file path).
        masker: for ``"auto"``: a :class:`~histgan.train.masker.Masker` or its folder (default: the run's
            ``RUN/masker/``).
        edit: move the reference's colour code by ``{attribute: amount}`` in L*a*b* units, attributes
            ``lightness`` (L*), ``redness`` (a*), ``yellowness`` (b*) (:mod:`histgan.edits`; the
            directions come from ``RUN/edit_directions.pt``, fitted on first use).
        edit_method: ``"linear"`` (edits commute) or ``"rbf"`` (a curved path along an RBF field).
        mix: with a list of references, how to mix their colour codes (:mod:`histgan.colour_code`):
            ``t`` in [0, 1] for two (weights ``1 − t``, ``t``), or one weight per reference, each ≥ 0,
            summing to 1 (not normalised; anything else is an error).
        refine: steps of test-time optimisation of the code towards the reference's histogram (and,
            for an image or colour reference, its mean L*a*b*), the network frozen; 0: none.
        input_mask: which pixels of ``x`` are its foreground, chosen like ``reference_mask`` (``"auto"``,
            ``"none"`` for the whole image, or a mask): compared with the reference by ``refine``, and read by
            a model trained with ``mask_input``; unused otherwise.

    Returns:
        the same kind as ``x``: a PIL image, or a tensor of ``x``'s shape in [-1, 1].
    """
    model = model if isinstance(model, Translator) else load_run(model)
    batch, was_pil = _as_tensor(x, "x")
    if refine:
        from histgan.colour_code import check_refine

        check_refine(refine)  # before the input's mask is looked for
    x_mask = resolve_input_mask(model, batch, input_mask, _alpha(x), masker=masker) \
        if model.reads_mask or refine else None
    if isinstance(reference, (list, tuple)) or mix is not None or refine:
        out = _steered(batch, reference, model, reference_mask, masker, mix, refine, x_mask, edit, edit_method)
    elif edit:
        from histgan.edits import edited_translation

        out = edited_translation(model, batch, reference_histogram(reference, model, reference_mask, masker), edit,
                                 edit_method, x_mask=x_mask)
    else:
        h, backdrop = reference_inputs(reference, model, reference_mask, masker)
        out = model(batch, x_mask, h_ref=h, backdrop=backdrop)
    if was_pil:
        from PIL import Image

        return Image.fromarray(to_uint8(out[0]))
    return out if isinstance(x, Tensor) and x.dim() == 4 else out[0]


def reference_lab(reference: Any, model: Translator, reference_mask: Any = "auto", masker: Any = None
                  ) -> Tensor | None:
    """A reference's mean L*a*b* colour ``(1, 3)`` (an image's over its mask, as the evaluation takes
    it; a hex colour's own), or None for a histogram, which has no single colour."""
    from histgan.metrics import reference_means
    from histgan.colour_difference import rgb_to_lab

    if isinstance(reference, str):
        return rgb_to_lab(colour_image(reference)).reshape(1, 3)
    if isinstance(reference, np.ndarray) or (isinstance(reference, Tensor) and reference.dim() == 2):
        return None
    ref, _ = _as_tensor(reference, "reference")
    mask = resolve_reference_mask(reference_mask, ref, alpha=_alpha(reference), masker=masker, run_dir=model.run_dir)
    return reference_means(ref, mask)[0].float()


def resolve_input_mask(model: Translator, x: Tensor, input_mask: Any = "auto", alpha: Tensor | None = None,
                       path: str | os.PathLike | None = None, masker: Any = None) -> Tensor | None:
    """The masks ``(N, 1, H, W)`` of inputs ``x (N, 3, H, W)`` by ``input_mask``, with the rules of
    :func:`~histgan.reference_mask.resolve_reference_mask` (``alpha``: the inputs' alpha masks; ``path``: the
    input's file, beside which ``"auto"`` looks for ``DIR_mask/NAME``). ``"none"`` means the whole image: None,
    or all ones for a model that reads the input's mask (``mask_input``)."""
    mask = resolve_reference_mask(input_mask, x, alpha=alpha, path=path, masker=masker, run_dir=model.run_dir)
    return torch.ones_like(x[:, :1]) if mask is None and model.reads_mask else mask


def _steered(batch: Tensor, reference: Any, model: Translator, reference_mask: Any, masker: Any,
             mix: Any, refine: int, x_mask: Tensor | None, edit: Any, edit_method: str) -> Tensor:
    """:func:`translate` with several references and/or a refined code (:mod:`histgan.colour_code`),
    then the edits, if any (:mod:`histgan.edits`, applied to the mixed and refined code)."""
    from histgan.colour_code import check_refine, mix_weights, steered_code

    check_refine(refine)
    refs = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    if not refs:
        raise ValueError("reference is an empty list; pass one reference, or several with mix")
    if (len(refs) > 1) != (mix is not None):
        raise ValueError("mix needs a list of two or more references, and several references need mix "
                         f"(t in [0, 1] for two, or one weight per reference); got {len(refs)} reference(s)")
    weights = mix_weights(mix, len(refs)) if mix is not None else None
    hs, bds = zip(*[reference_inputs(r, model, reference_mask, masker) for r in refs])
    labs = [reference_lab(r, model, reference_mask, masker) for r in refs] if refine else None
    code = steered_code(model, batch, list(hs), weights, refine, x_mask, labs, backdrops=list(bds))
    code = edited_code(model, code, edit, edit_method)
    with torch.no_grad():
        return model.G(batch.to(model.device).float(), code=code, **model.mask_kwargs(x_mask)).clamp(-1, 1)


def edited_code(model: Translator, code: Tensor, edit: Any, edit_method: str) -> Tensor:
    """``code`` moved by ``edit`` (:func:`histgan.edits.apply_edits`); unchanged for no edit or zero amounts."""
    if not edit:
        return code
    from histgan.edits import METHODS, apply_edits, check_edit, directions_for

    edit = check_edit(edit)
    if edit_method not in METHODS:
        raise ValueError(f"edit method must be one of {', '.join(METHODS)}, got {edit_method!r}")
    return apply_edits(code, edit, directions_for(model), edit_method) if any(edit.values()) else code
