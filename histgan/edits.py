"""Edit directions in the colour code's space: lighter/darker, redder, more yellow.

The generator's colour code ``z = E(h_ref)`` (:meth:`histgan.networks.generator.Generator.encode`) is a small
latent space. An *edit* moves a code so that the translated image's mean foreground colour changes by
an amount the user names in CIE L*a*b* units: ``lightness`` (L*), ``redness`` (a*), ``yellowness`` (b*).
Two kinds of direction are fitted from a run's training references (images of Y with their masks):

* **linear** (Voynov & Babenko, "Unsupervised discovery of interpretable directions in the GAN latent
  space"): the least-squares regression of the codes on the three attributes together,
  ``z ≈ z̄ + Σ_k (A_k − Ā_k) w_k``. Each ``w_k`` is the code change per unit of attribute ``k`` *with the
  other two held fixed* (a multiple regression; regressing on one attribute alone would carry the
  changes that come with it, e.g. darker skin on the Monk scale is also redder and yellower). The edit
  is ``z + Σ_k t_k w_k``: a sum, so edits commute.
* **RBF field** (Tzelepis et al., "WarpedGANSpace: Finding non-linear RBF paths in GAN latent space"):
  per attribute ``f_k(z) = b_k + Σ_i α_ki exp(−γ_k ‖z − s_i‖²)`` predicts the attribute from the
  code; the edit walks uphill on ``f_k`` — steepest ascent in the metric of the codes' covariance,
  with the other two attributes' predictions held — until ``f_k`` has changed by the requested
  amount. A curved path: edits need not commute (Aoshima & Matsubara, "Deep curvilinear editing:
  commutative and nonlinear image manipulation for pretrained deep generative model").

The references are augmented by colour-shifted copies (L*, a*, b* shifted inside the mask), which
spreads the three attributes independently so the regression can tell them apart. Directions are
stored in ``RUN/edit_directions.pt`` (``python -m histgan edits fit RUN``). The regression and the
fields' fits are in :mod:`histgan.edit_fitting`; this module gathers the codes, applies edits and keeps
the fitted directions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from histgan.colour_difference import lab_to_rgb, mean_lab, rgb_to_lab
from histgan.edit_fitting import fit_linear, fit_rbf, whitening
from histgan.errors import HistganError
from histgan.io import atomic_path

__all__ = ["ATTRIBUTES", "METHODS", "EditDirections", "check_edit", "shift_references", "reference_codes",
           "encoder_digest", "rbf_value", "rbf_gradient", "apply_edits", "fit_directions", "save_directions",
           "load_directions", "directions_for", "edited_translation", "DIRECTIONS_FILE"]

#: Attribute names, in the order of the L*a*b* channels they change.
ATTRIBUTES = ("lightness", "redness", "yellowness")
#: How an edit moves a code.
METHODS = ("linear", "rbf")
#: File in the run folder holding the fitted directions.
DIRECTIONS_FILE = "edit_directions.pt"
_FORMAT = "histgan-edit-directions/1"
#: Half-widths of the uniform L*, a*, b* shifts of the augmented reference copies.
SHIFT_RANGE = (15.0, 6.0, 8.0)


@dataclass
class EditDirections:
    """Fitted directions for one checkpoint of a run (float64 tensors, code length ``D``)."""

    linear: Tensor  # (3, D): code change per unit of L*, a*, b*, the other two held fixed
    centres: Tensor  # (M, D): RBF centres s_i (references' codes chosen by farthest-point sampling)
    alpha: Tensor  # (3, M): RBF weights α_ki per attribute
    gamma: Tensor  # (3,): RBF width γ_k per attribute (one for all centres, chosen by leave-one-out error)
    bias: Tensor  # (3,): b_k
    rbf_r2: Tensor  # (3,): leave-one-out R² of f_k on the references
    whiten: Tensor  # (D, D): Cholesky factor L of the codes' covariance Σ = L Lᵀ (the walk's metric)
    step_size: float  # largest step of an RBF walk in whitened units (standard deviations of the codes)
    step: int  # training step of the checkpoint the directions belong to
    encoder: str  # SHA-256 of the histogram encoder's weights: the codes, hence the directions, depend on them alone
    n_references: int  # references (with their shifted copies) they were fitted on


def check_edit(edit: Mapping[str, float] | None) -> dict[str, float]:
    """Validate ``{attribute: amount}``; returns a plain dict (empty for None)."""
    if edit is None:
        return {}
    if not isinstance(edit, Mapping):
        raise ValueError(f"edit must map attribute names {ATTRIBUTES} to amounts, got {type(edit).__name__}")
    out = {}
    for name, amount in edit.items():
        if name not in ATTRIBUTES:
            raise ValueError(f"edit: unknown attribute {name!r}; use one of {', '.join(ATTRIBUTES)}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
            raise ValueError(f"edit: the amount for {name} must be a finite number (L*a*b* units), got {amount!r}")
        out[name] = float(amount)
    return out


def shift_references(images: Tensor, masks: Tensor, shifts: Tensor) -> Tensor:
    """Shift the foreground's L*, a*, b* by ``shifts (N, 3)``; ``(N, 3, H, W)`` → same, in [-1, 1].

    Out-of-gamut colours are clipped (:func:`histgan.colour_difference.lab_to_rgb`), so the achieved
    shift can be smaller than asked: measure the result, don't trust ``shifts``.
    """
    lab = rgb_to_lab(images) + shifts[:, :, None, None].to(images.dtype)
    return torch.where(masks.bool(), lab_to_rgb(lab), images)


@torch.no_grad()
def reference_codes(model: Any, images: Tensor, masks: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Codes ``(N, D)`` and mean foreground L*a*b* ``(N, 3)`` (float64) of references through ``model``."""
    codes, attrs = [], []
    for i in range(0, len(images), chunk):
        x, m = images[i:i + chunk], masks[i:i + chunk]
        codes.append(model.G.encode(model.histogram(x, m)).double().cpu())
        attrs.append(torch.from_numpy(mean_lab(x, m)))
    return torch.cat(codes), torch.cat(attrs)


def rbf_value(z: Tensor, d: EditDirections) -> Tensor:
    """``f(z)``: ``(N, D)`` → ``(N, 3)`` predicted L*, a*, b*."""
    phi = torch.exp(-d.gamma[None, :, None] * torch.cdist(z.double(), d.centres).pow(2)[:, None, :])
    return d.bias + (phi * d.alpha[None]).sum(-1)


def rbf_gradient(z: Tensor, d: EditDirections) -> Tensor:
    """``∇f_k(z) = Σ_i α_ki exp(−γ_k‖z − s_i‖²) (−2 γ_k)(z − s_i)``: ``(N, D)`` → ``(N, 3, D)``."""
    z = z.double()
    diff = z[:, None, :] - d.centres[None]  # (N, M, D)
    phi = torch.exp(-d.gamma[None, :, None] * diff.pow(2).sum(-1)[:, None, :])  # (N, 3, M)
    return torch.einsum("nkm,nmd->nkd", phi * d.alpha[None] * (-2.0 * d.gamma[None, :, None]), diff)


def _rbf_walk(z: Tensor, d: EditDirections, k: int, amount: float, keep_others: bool = True,
              max_steps: int = 500, tol: float = 1e-3) -> Tensor:
    """Walk codes ``(N, D)`` until ``f_k`` changed by ``amount`` (or the field stops rising).

    Steepest ascent in the metric of the codes' covariance ``Σ = L Lᵀ``: each step is
    ``Δz = L u`` with ``u`` the least-norm solution of ``(J L) u = r`` (``J``: the gradients of the
    attributes held, ``r``: what is left to reach their targets), ``‖u‖ ≤ d.step_size``. For one
    attribute that is ``Δz ∝ Σ ∇f_k``. The plain gradient ``∇f_k`` of a field fitted on codes that
    fill only part of the code space points mostly *off* the references' codes (the field is steep
    where no reference constrains it) and the generator ignores such moves; ``Σ`` keeps the walk
    where the references vary. With ``keep_others`` the other two attributes are held at their
    start values; without, only ``f_k`` is steered.
    """
    z = z.double().clone()
    held = list(range(len(ATTRIBUTES))) if keep_others else [k]
    target = rbf_value(z, d)[:, held]
    target[:, held.index(k)] += amount
    for _ in range(max_steps):
        left = target - rbf_value(z, d)[:, held]  # (N, len(held))
        active = left.abs().amax(1) > tol * max(abs(amount), 1.0)
        if not bool(active.any()):
            break
        jac = rbf_gradient(z, d)[:, held] @ d.whiten  # (N, len(held), D): J L
        u = torch.linalg.lstsq(jac, left[..., None], driver="gelsd").solution[..., 0]  # least norm
        scale = (d.step_size / u.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        z = z + torch.where(active, scale, torch.zeros_like(scale))[:, None] * (u @ d.whiten.T)
    return z


def apply_edits(code: Tensor, edit: Mapping[str, float] | None, d: EditDirections, method: str = "linear",
                keep_others: bool = True) -> Tensor:
    """Move codes ``(N, D)`` by ``{attribute: amount}`` (L*a*b* units); returns ``(N, D)`` of ``code``'s dtype.

    ``linear``: ``z + Σ_k t_k w_k`` (commutes). ``rbf``: walks uphill on ``f_k`` (:func:`_rbf_walk`) for
    each attribute in the order given (the order can matter). An amount of 0 leaves the code exactly as
    it was. ``keep_others`` (rbf): hold the other attributes' predictions during each walk.
    """
    if method not in METHODS:
        raise ValueError(f"edit method must be one of {', '.join(METHODS)}, got {method!r}")
    out = code
    for name, amount in check_edit(edit).items():
        if amount == 0.0:
            continue
        k = ATTRIBUTES.index(name)
        if method == "linear":
            out = out + amount * d.linear[k].to(out)
        else:
            out = _rbf_walk(out.cpu(), d, k, amount, keep_others).to(device=code.device, dtype=code.dtype)
    return out


def encoder_digest(model: Any) -> str:
    """SHA-256 over the histogram encoder's parameters (float32 bytes, in order)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.G.encoder_hist.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fit_directions(model: Any, data: str | os.PathLike | None = None, augment: int = 4, centres: int = 64,
                   seed: int = 0) -> EditDirections:
    """Fit both kinds of direction for ``model`` (a :class:`~histgan.inference.Translator`).

    Args:
        model: the loaded run; its generator G must be conditioned.
        data: dataset root with ``trainB/`` (default: the run's training data, ``config.data``).
        augment: colour-shifted copies per reference (shifts uniform in ±:data:`SHIFT_RANGE`).
        centres: RBF centres ``M``. seed: seed of the shifts.
    """
    from histgan.data.folders import load_domain

    if not model.G.conditioned:
        raise HistganError(f"the {model.config.variant} generator has no colour code to edit")
    root = Path(data if data is not None else model.config.data)
    if not (root / "trainB").is_dir():
        raise FileNotFoundError(f"{root / 'trainB'} does not exist: edit directions are fitted on the training "
                                "references; pass the dataset root (--data DIR)")
    images, masks, _ = load_domain(root, "trainB", size=model.config.image_size)
    gen = torch.Generator().manual_seed(seed)
    shifts = [torch.zeros(len(images), 3)] + [(2 * torch.rand(len(images), 3, generator=gen) - 1)
                                              * torch.tensor(SHIFT_RANGE) for _ in range(augment)]
    parts = []
    for c, shift in enumerate(shifts):
        for i in range(0, len(images), 64):  # in chunks: 477 references of 256² shifted 4 times fill gigabytes
            x, m = images[i:i + 64], masks[i:i + 64]
            parts.append(reference_codes(model, x if c == 0 else shift_references(x, m, shift[i:i + 64]), m))
    codes, attrs = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    rbf = fit_rbf(codes, attrs, centres)
    return EditDirections(fit_linear(codes, attrs), rbf["centres"], rbf["alpha"], rbf["gamma"], rbf["bias"],
                          rbf["r2"], whitening(codes), 0.02, int(model.step), encoder_digest(model), len(codes))


def save_directions(d: EditDirections, path: str | os.PathLike) -> None:
    """Write directions atomically (plain tensors and numbers: loadable with ``weights_only=True``)."""
    state = {"format": _FORMAT, **{f.name: getattr(d, f.name) for f in fields(d)}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_directions(path: str | os.PathLike) -> EditDirections:
    """Read directions written by :func:`save_directions`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; fit it with 'python -m histgan edits fit {path.parent}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable file gets the same advice
        raise HistganError(f"{path} is not readable ({exc}); refit it with "
                           f"'python -m histgan edits fit {path.parent}'") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise HistganError(f"{path} is not a histgan edit-directions file; refit it with "
                           f"'python -m histgan edits fit {path.parent}'")
    missing = [f.name for f in fields(EditDirections) if f.name not in state]
    if missing:
        raise HistganError(f"{path} lacks {', '.join(missing)} (an older version wrote it); refit it with "
                           f"'python -m histgan edits fit {path.parent}'")
    return EditDirections(**{f.name: state[f.name] for f in fields(EditDirections)})


def directions_for(model: Any, data: str | os.PathLike | None = None, refit: bool = False) -> EditDirections:
    """The run's directions: ``RUN/edit_directions.pt`` if it was fitted for this checkpoint's encoder
    (:func:`encoder_digest`), else fitted (from ``data`` or the run's training data) and saved there."""
    if model.run_dir is None:
        raise HistganError("the model has no run folder to keep edit directions in; use fit_directions()")
    path = Path(model.run_dir) / DIRECTIONS_FILE
    if path.is_file() and not refit:
        try:
            d = load_directions(path)
        except HistganError:  # unreadable or outdated: it is only a cache of the fit, so fit again
            d = None
        if d is not None and d.encoder == encoder_digest(model):
            return d
    try:
        d = fit_directions(model, data)
    except FileNotFoundError as exc:
        raise HistganError(f"{path} is missing or belongs to another checkpoint, and {exc}; run "
                           f"'python -m histgan edits fit {model.run_dir} --data DIR'") from None
    save_directions(d, path)
    return d


@torch.no_grad()
def edited_translation(model: Any, x: Tensor, h_ref: Tensor, edit: Mapping[str, float] | None,
                       method: str = "linear", data: str | os.PathLike | None = None,
                       x_mask: Tensor | None = None) -> Tensor:
    """``G(x, code = edit(E(h_ref)))`` in [-1, 1]: ``(N, 3, H, W)``, ``(N | 1, 3, K)`` → ``(N, 3, H, W)``.

    ``x_mask (N, 1, H, W)``: the inputs' masks, for a model trained with ``mask_input`` (required there).

    Amounts of 0 change nothing (the directions are then not even loaded). Directions come from
    :func:`directions_for` (``RUN/edit_directions.pt``, fitted on first use from ``data``).
    """
    edit = check_edit(edit)
    if method not in METHODS:
        raise ValueError(f"edit method must be one of {', '.join(METHODS)}, got {method!r}")
    if not model.G.conditioned:
        raise HistganError(f"the {model.config.variant} generator has no colour code to edit")
    x = x.to(model.device).float()
    h = h_ref.to(model.device).float()
    h = h.unsqueeze(0) if h.dim() == 2 else h
    code = model.G.encode(h.expand(len(x), -1, -1) if len(h) == 1 else h)
    if any(edit.values()):
        code = apply_edits(code, edit, directions_for(model, data), method)
    return model.G(x, code=code, **model.mask_kwargs(x_mask)).clamp(-1, 1)
