"""Loss terms of eqs (6)–(11) of Kobayashi and Wada (the book's training page) and the weighted
total of eq (7).

* :class:`GANLoss` — eq (9): binary cross-entropy on logits (the default), or least squares.
* :func:`cycle_loss` — eq (10), :func:`identity_loss` — eq (11): mean absolute error.
* :func:`colour_loss` — eq (6) between the soft histogram of a fake over the **input's** mask
  (the translation keeps the shape, so the input's silhouette is the output's) and the reference's
  histogram over the reference's own mask.
* :func:`mean_colour_loss` — beyond the paper: the ΔE of eq (12) between a fake's mean L*a*b* over
  the input's mask and the reference's over its own (:func:`masked_mean_lab`), the first moment that
  eq (6) weighs only weakly when the shift is small (the training page's ablation).
* :func:`total_loss` — eq (7), plus ``λ_mean`` times the mean-colour terms.

The loss weights and why we chose them: :mod:`histgan.config`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor

from histgan.colour_difference import lab_from_unit_rgb
from histgan.histogram import histogram_loss, soft_histogram

__all__ = ["GANLoss", "cycle_loss", "identity_loss", "masked_histogram", "colour_loss", "masked_mean_lab",
           "masked_mean_labs", "mean_colour_loss", "mean_colour_losses", "total_loss"]


def _full(t: Tensor) -> Tensor:
    """Half precision (autocast outputs) to float32; float32 and float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class GANLoss:
    """Adversarial loss on discriminator logits, one small abstraction for G and D (eq 9).

    ``"bce"``: ``D`` maximises ``log D(y) + log(1 − D(G(x)))``; written as a minimised binary
    cross-entropy on logits, with the non-saturating form ``−log D(G(x))`` for the generator.
    ``"lsgan"``: ``(D(y) − 1)² + D(G(x))²`` for D and ``(D(G(x)) − 1)²`` for G.

    Args:
        kind: ``"bce"`` or ``"lsgan"``.
    """

    def __init__(self, kind: str = "bce") -> None:
        if kind not in ("bce", "lsgan"):
            raise ValueError(f"gan_loss must be 'bce' or 'lsgan', got {kind!r}")
        self.kind = kind

    def __call__(self, logits: Tensor, target_is_real: bool) -> Tensor:
        """Mean loss of patch logits ``(N, 1, H', W')`` against an all-real or all-fake target."""
        logits = _full(logits)
        target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
        if self.kind == "bce":
            return nnf.binary_cross_entropy_with_logits(logits, target)
        return nnf.mse_loss(logits, target)


def cycle_loss(reconstructed: Tensor, original: Tensor) -> Tensor:
    """One term of eq (10): ``E ‖F(G(x)) − x‖₁`` as a mean over pixels, ``(N, 3, H, W)`` → scalar."""
    return nnf.l1_loss(_full(reconstructed), _full(original))


def identity_loss(same: Tensor, original: Tensor) -> Tensor:
    """One term of eq (11): ``E ‖G(y) − y‖₁`` as a mean over pixels, ``(N, 3, H, W)`` → scalar."""
    return nnf.l1_loss(_full(same), _full(original))


def masked_histogram(images: Tensor, mask: Tensor | None, bins: int, bandwidth: float | None) -> Tensor:
    """Soft histogram of eq (3)–(5) outside autocast, ``(N, 3, H, W)`` → ``(N, 3, K)``.

    Half-precision images are taken to float32 (float64 stays float64).

    Generator outputs are clamped to [-1, 1] first: a bf16 tanh can round a hair past ±1.
    """
    with torch.autocast(device_type=images.device.type, enabled=False):
        return soft_histogram(_full(images).clamp(-1.0, 1.0), bins, bandwidth, mask=mask)


def colour_loss(fake: Tensor, fake_mask: Tensor | None, h_ref: Tensor, bins: int, bandwidth: float | None,
                kind: str = "l2") -> Tensor:
    """Eq (6): ``Σ_c ‖h_fake^c − h_ref^c‖₂``, batch mean.

    Args:
        fake: generated images ``(N, 3, H, W)``.
        fake_mask: the **input's** foreground mask ``(N, 1, H, W)`` (or ``None`` for all pixels).
        h_ref: the references' histograms ``(N, 3, K)`` over their own masks.
        bins: ``K``; bandwidth: ``B`` (``None`` = ``2 / K``); kind: see
            :func:`histgan.histogram.histogram_loss`.
    """
    return histogram_loss(masked_histogram(fake, fake_mask, bins, bandwidth), h_ref, kind=kind)


def masked_mean_lab(images: Tensor, mask: Tensor | None) -> Tensor:
    """Differentiable mean CIE L*a*b* of each image over its mask: ``(N, 3, H, W)`` in [-1, 1] → ``(N, 3)``.

    The conversion of :func:`histgan.colour_difference.lab_from_unit_rgb`, in float32 outside autocast;
    images are clamped to [-1, 1] first (a tanh output's round-off). Nothing is read back from the
    device; an empty mask gives the mean of nothing as 0 (not a NaN). :func:`masked_mean_labs` takes
    several masks of the same images at the cost of one conversion.
    """
    return masked_mean_labs(images, [mask])[0]


def masked_mean_labs(images: Tensor, masks: Sequence[Tensor | None]) -> list[Tensor]:
    """:func:`masked_mean_lab` of ``images`` over each of ``masks`` (e.g. a foreground and its
    background), converting the images to L*a*b* once: a list of ``(N, 3)``."""
    with torch.autocast(device_type=images.device.type, enabled=False):
        images = _full(images)
        n, _, h, w = images.shape
        lab = lab_from_unit_rgb((images.clamp(-1.0, 1.0) + 1.0) / 2.0).reshape(n, 3, h * w)
        weights = torch.cat([torch.ones_like(images[:, :1]) if m is None else (m != 0).to(images.dtype)
                             for m in masks], dim=1).reshape(n, len(masks), h * w)  # (N, k, HW)
        means = torch.bmm(lab, weights.transpose(1, 2)) / weights.sum(2).clamp_min(1.0)[:, None]  # (N, 3, k)
        return list(means.unbind(2))


def mean_colour_loss(fake: Tensor, fake_mask: Tensor | None, lab_ref: Tensor) -> Tensor:
    """Each image's ΔE (eq 12, CIE 1976) between its mean L*a*b* over ``fake_mask`` and ``lab_ref``.

    ``fake (N, 3, H, W)``, ``lab_ref (N, 3)`` (e.g. :func:`masked_mean_lab` of the references over
    their own masks) → ``(N,)``. The distance is ``sqrt(‖Δ‖² + 1e-12)``: its gradient has unit length
    for any shift, however small (eq (6) in L2 is quadratic there), and is finite at 0.
    :func:`mean_colour_losses` takes several masks and references of the same images.
    """
    return mean_colour_losses(fake, [fake_mask], [lab_ref])[0]


def mean_colour_losses(fake: Tensor, fake_masks: Sequence[Tensor | None], lab_refs: Sequence[Tensor]) -> list[Tensor]:
    """:func:`mean_colour_loss` of ``fake`` over each mask against its reference, with one conversion
    of ``fake`` to L*a*b*: a list of ``(N,)``."""
    means = masked_mean_labs(fake, fake_masks)
    return [((m - ref.to(m.dtype)) ** 2).sum(1).add(1e-12).sqrt() for m, ref in zip(means, lab_refs, strict=True)]


def total_loss(terms: Mapping[str, Tensor], lambda_gan: float, lambda_cycle: float, lambda_idt: float,
               lambda_hist: float, lambda_mean: float = 0.0) -> Tensor:
    """Eq (7): ``λ_gan L_gan + λ_cycle L_cycle + λ_idt L_idt + λ_hist L_hist``, plus ``λ_mean L_mean``.

    Args:
        terms: any of ``gan_G, gan_F`` (eq 8), ``cycle_x, cycle_y`` (eq 10), ``idt_x, idt_y``
            (eq 11), ``hist_y, hist_x`` (eq 6 for G's and F's fakes), ``mean_y, mean_x``
            (:func:`mean_colour_loss`, batch means; ``mean_bg_y, mean_bg_x`` for the backgrounds);
            missing terms count 0.
        lambda_gan, lambda_cycle, lambda_idt, lambda_hist, lambda_mean: the weights.
    """
    groups = {"gan": lambda_gan, "cycle": lambda_cycle, "idt": lambda_idt, "hist": lambda_hist, "mean": lambda_mean}
    total = None
    for name, value in terms.items():
        weight = groups[name.split("_")[0]]
        if weight:
            total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("total_loss needs at least one term with a non-zero weight")
    return total
