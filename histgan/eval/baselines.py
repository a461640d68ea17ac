"""Non-learned baselines: what colour transfer alone achieves, to set the learned models' ΔE in context.

The mean-colour ΔE of eq (12) can be met without learning anything: painting the input's silhouette
with the reference's mean colour scores ΔE ≈ 0. So every report carries these four rows beside the
learned variants, and the shape metrics against ground truth show what the models add beyond colour
(shading, texture, a plausible background).

Every baseline follows the model protocol of :func:`histgan.eval.evaluate.evaluate`::

    out = baseline(x, x_mask, ref, ref_mask)   # (N, 3, H, W), (N, 1, H, W), ... -> (N, 3, H, W)

with images in model space [-1, 1] and masks non-zero on the foreground. All four change only the
pixels inside the input's mask. The **background** (choice documented here, a parameter of each)
is by default filled with the reference's mean background colour — what a person with the masks
could do by hand — or kept from the input with ``background="input"``; where a reference has no
background pixels the input's background is kept.

* (a) :func:`flat_fill` — the reference's mean foreground colour, as the sRGB colour of the mean
  L*a*b* value (so its ΔE to the reference is 0 up to gamut clipping and rounding; the sRGB mean
  would not be, because the mean of L*a*b* values is not the L*a*b* value of the mean colour).
* (b) :func:`luminance_tint` — the input's luma shading, scaled so its foreground mean is 1, times
  that same mean colour: a tinted render. Its mean RGB is the mean colour, but its mean L*a*b* is
  not (non-linearity again), so its ΔE is a few units.
* (c) :func:`reinhard` — Reinhard et al. (2001) colour transfer: match the mean and standard
  deviation of each channel between the foregrounds. Reinhard used the lαβ space; we match in CIE
  L*a*b*, the space ΔE measures. A channel that does not vary in the input (a*, b* of a grey
  render) gets the reference's mean.
* (d) :func:`histogram_matching` — per-channel histogram matching of the input's foreground to the
  reference's foreground (exact: each value goes to the reference quantile of its rank). On a grey
  input the three channels share one ranking, so the colours are the reference's quantiles, paired.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from histgan.metrics import reference_means
from histgan.colour_difference import lab_to_rgb, masked_mean, rgb_to_lab

__all__ = ["BASELINES", "BASELINE_LABELS", "flat_fill", "luminance_tint", "reinhard", "histogram_matching"]

#: Luma weights (ITU-R BT.709) for the shading of :func:`luminance_tint`.
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)
#: A channel whose foreground standard deviation is below this (L*a*b* units) counts as constant.
STD_FLOOR = 1e-2
_BACKGROUNDS = ("reference_mean", "input")


def _mask(mask: Tensor) -> Tensor:
    return mask != 0


def _compose(fg: Tensor, x: Tensor, x_mask: Tensor, bg_lab: Tensor, background: str) -> Tensor:
    """Foreground ``fg`` inside the input's mask, the chosen background outside: → ``(N, 3, H, W)``."""
    if background not in _BACKGROUNDS:
        raise ValueError(f"background must be one of {_BACKGROUNDS}, got {background!r}")
    bg = x
    if background == "reference_mean":
        has_bg = ~torch.isnan(bg_lab).any(dim=1)
        fill = lab_to_rgb(torch.nan_to_num(bg_lab)[:, :, None, None].to(x.dtype))
        bg = torch.where(has_bg[:, None, None, None], fill.expand_as(x), x)
    return torch.where(_mask(x_mask), fg.expand_as(x), bg)


def _mean_colour(ref: Tensor, ref_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Reference mean foreground L*a*b* ``(N, 3)`` and mean background L*a*b* ``(N, 3)`` (NaN if none)."""
    fg, bg = reference_means(ref, ref_mask)
    return fg.to(ref.device), bg.to(ref.device)


@torch.no_grad()
def flat_fill(x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor, background: str = "reference_mean") -> Tensor:
    """(a) Fill the input's foreground with the reference's mean colour: ``(N, 3, H, W)`` → same."""
    fg_lab, bg_lab = _mean_colour(ref, ref_mask)
    return _compose(lab_to_rgb(fg_lab[:, :, None, None].to(x.dtype)), x, x_mask, bg_lab, background)


@torch.no_grad()
def luminance_tint(x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor,
                   background: str = "reference_mean") -> Tensor:
    """(b) Input luma ``Y'`` over its foreground mean, times the reference's mean colour ``c``.

    ``out = clip(Y' / mean_fg(Y') · c)`` on [0, 1] sRGB values, so ``mean_fg(out) = c`` before clipping.
    """
    fg_lab, bg_lab = _mean_colour(ref, ref_mask)
    c = lab_to_rgb(fg_lab[:, :, None, None].to(x.dtype), value_range=(0, 1))
    w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    luma = (((x + 1.0) / 2.0).clamp(0, 1) * w).sum(dim=1, keepdim=True)
    shade = luma / masked_mean(luma, _mask(x_mask).to(x.dtype), "x_mask")[:, :, None, None].clamp_min(1e-6)
    return _compose((shade * c).clamp(0, 1) * 2.0 - 1.0, x, x_mask, bg_lab, background)


def _masked_mean_std(lab: Tensor, mask: Tensor, name: str) -> tuple[Tensor, Tensor]:
    mean = masked_mean(lab, mask, name)
    var = masked_mean((lab - mean[:, :, None, None]) ** 2, mask, name)
    return mean, var.sqrt()


@torch.no_grad()
def reinhard(x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor, background: str = "reference_mean") -> Tensor:
    """(c) Reinhard colour transfer in L*a*b*: ``(l − μ_x) σ_ref / σ_x + μ_ref`` per channel, foregrounds only."""
    m_x, m_ref = _mask(x_mask).to(x.dtype), _mask(ref_mask).to(ref.dtype)
    lab_x, lab_ref = rgb_to_lab(x), rgb_to_lab(ref)
    mu_x, sd_x = _masked_mean_std(lab_x, m_x, "x_mask")
    mu_ref, sd_ref = _masked_mean_std(lab_ref, m_ref, "ref_mask")
    scale = torch.where(sd_x > STD_FLOOR, sd_ref / sd_x.clamp_min(STD_FLOOR), torch.zeros_like(sd_x))
    out_lab = (lab_x - mu_x[:, :, None, None]) * scale[:, :, None, None] + mu_ref[:, :, None, None]
    _, bg_lab = _mean_colour(ref, ref_mask)
    return _compose(lab_to_rgb(out_lab), x, x_mask, bg_lab, background)


@torch.no_grad()
def histogram_matching(x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor,
                       background: str = "reference_mean") -> Tensor:
    """(d) Per-channel exact histogram matching of the input's foreground to the reference's.

    A foreground value whose rank (count of foreground values ``<=`` it) is ``r`` of ``n`` goes to
    the reference's ``ceil(r m / n)``-th smallest foreground value (of ``m``): ties stay tied, and
    with ``n = m`` and no ties the output's foreground values are exactly the reference's.
    """
    n, c, h, w = x.shape
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    src = x.reshape(n, c, h * w)
    m_src = _mask(x_mask).reshape(n, 1, h * w).expand(n, c, h * w)
    m_ref = _mask(ref_mask).reshape(ref_mask.shape[0], 1, h * w).expand(ref.shape[0], c, h * w)
    sorted_src = torch.where(m_src, src, inf).sort(dim=-1).values.contiguous()
    sorted_ref = torch.where(m_ref, ref.reshape(ref.shape[0], c, h * w), inf).sort(dim=-1).values
    n_src, n_ref = m_src[:, :1].sum(-1, keepdim=True), m_ref[:, :1].sum(-1, keepdim=True)
    if bool((n_src == 0).any()) or bool((n_ref == 0).any()):
        raise ValueError("x_mask and ref_mask must select at least one pixel in every image")
    rank = torch.searchsorted(sorted_src, src.contiguous(), right=True)
    index = ((rank * n_ref + n_src - 1) // n_src - 1).clamp(min=0)
    index = torch.minimum(index, n_ref - 1)
    matched = torch.gather(sorted_ref.expand(n, c, h * w), -1, index).reshape(n, c, h, w)
    _, bg_lab = _mean_colour(ref, ref_mask)
    return _compose(matched, x, x_mask, bg_lab, background)


#: The four baselines by report name, in report order.
BASELINES: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "baseline_flat_fill": flat_fill,
    "baseline_luminance_tint": luminance_tint,
    "baseline_reinhard": reinhard,
    "baseline_histogram_matching": histogram_matching,
}
#: Row labels for the report.
BASELINE_LABELS = {
    "baseline_flat_fill": "(a) flat fill of the mean colour",
    "baseline_luminance_tint": "(b) luminance × mean colour",
    "baseline_reinhard": "(c) Reinhard colour transfer",
    "baseline_histogram_matching": "(d) histogram matching",
}
