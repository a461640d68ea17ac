"""Colour difference: sRGB ↔ CIE L*a*b*, ΔE of mean colours (eq 12), JIS grades (Table 1).

* **ΔE** (:func:`delta_e`, eq 12) — the Euclidean distance between the *mean* L*a*b* colour of the
  generated image's foreground and the mean L*a*b* colour of the reference's foreground (the paper's
  "pixel means"). It says whether the overall skin tone and brightness were carried over; it says
  nothing about shading, texture or shape (a flat fill of the mean colour scores ΔE ≈ 0, see
  :mod:`histgan.eval.baselines`). The mean of L*a*b* values is not the L*a*b* value of the mean RGB
  colour (the conversion is non-linear), so we convert every pixel, then average. CIE 1976 ΔE is
  what the paper reports; ``method="cie2000"`` gives CIEDE2000 between the *same two means*.
* **JIS grade** (:func:`jis_grade`) — ΔE read against the paper's Table 1 (:data:`JIS_TABLE`).

The shape metrics (SSIM, PSNR, foreground IoU) are in :mod:`histgan.metrics`. Images are sRGB in model space [-1, 1] by default, or [0, 1] with
``value_range=(0, 1)`` — stated, never guessed.
"""


import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

with warnings.catch_warnings():  # colour-science warns that SciPy is absent; we need none of it
    warnings.simplefilter("ignore")
    import colour

from histgan.images import RANGE_TOLERANCE
from histgan.srgb import linear_to_srgb, srgb_to_linear

__all__ = ["ImageLike", "JisGrade", "JIS_TABLE", "JIS_SOURCE", "lab_from_unit_rgb", "rgb_to_lab", "lab_to_rgb",
           "to_unit", "as_mask", "masked_mean", "mean_lab", "mean_of_lab", "delta_e", "delta_e_lab", "jis_grade"]

ImageLike = Tensor | np.ndarray


@dataclass(frozen=True)
class JisGrade:
    """One row of the colour-tolerance table: ``low <= ΔE < high`` is grade ``grade``."""

    grade: str  # the letter used in reports
    low: float  # inclusive lower bound of ΔE
    high: float  # exclusive upper bound of ΔE
    perceived: str  # how the difference is perceived (Table 1's wording, in English)


#: Where :data:`JIS_TABLE` comes from.
JIS_SOURCE = (
    "Table 1 of the paper ('色度差表' attributed to the Japanese Industrial Standard): the colour "
    "tolerance grades used in Japanese industry for CIE 1976 ΔE*ab (colour differences per "
    "JIS Z 8730 / Z 8781-4). The source lists finer grades below 1.6; we collapse them into 'AA'. "
    "Other published tolerance tables use different letters for the same ranges."
)
#: The paper's Table 1, plus the two open ends. Ranges are lower-inclusive.
JIS_TABLE: tuple[JisGrade, ...] = (
    JisGrade("AA", 0.0, 1.6, "finer than grade A: hard to tell apart even side by side"),
    JisGrade("A", 1.6, 3.2, "barely noticed side by side; generally taken as the same colour"),
    JisGrade("B", 3.2, 6.5, "the same colour at the impression level; may draw complaints in "
                            "paints and plastics"),
    JisGrade("C", 6.5, 13.0, "one step of the JIS standard / Munsell colour charts"),
    JisGrade("D", 13.0, 25.0, "distinguishable by systematic colour names; beyond it, a different "
                              "colour name"),
    JisGrade("beyond D", 25.0, math.inf, "a different colour name"),
)

# sRGB (IEC 61966-2-1, :mod:`histgan.srgb`) → XYZ → CIE L*a*b* (D65, 2°), constants from colour-science.
_M_RGB_TO_XYZ = np.asarray(colour.models.RGB_COLOURSPACE_sRGB.matrix_RGB_to_XYZ, dtype=np.float64)
_WHITE_XYZ = np.asarray(colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]))
_EPSILON = 216.0 / 24389.0  # CIE ε: below it L*a*b* uses the linear segment
_KAPPA = 24389.0 / 27.0  # CIE κ
_M_XYZ_OVER_WHITE = _M_RGB_TO_XYZ / _WHITE_XYZ[:, None]
#: (f_x, f_y, f_z) → (L* + 16, a*, b*): L* = 116 f_y − 16, a* = 500 (f_x − f_y), b* = 200 (f_y − f_z)
_F_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
_LAB_OFFSET = np.array([16.0, 0.0, 0.0])  # L* = 116 f_y − 16


def _as_batch(images: ImageLike, name: str, channels: int | None = 3) -> Tensor:
    """Tensor or array ``(N, C, H, W)`` / ``(C, H, W)`` → float tensor ``(N, C, H, W)``."""
    t = torch.from_numpy(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(images).__name__}")
    t = t.detach()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or (channels is not None and t.shape[1] != channels):
        raise ValueError(f"{name} must have shape (N, {channels or 'C'}, H, W) or ({channels or 'C'}, H, W), "
                         f"got {tuple(t.shape)}")
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def to_unit(images: ImageLike, value_range: Sequence[float] = (-1, 1), name: str = "images") -> Tensor:
    """Map images from ``value_range`` to [0, 1]: ``(N, 3, H, W)`` or ``(3, H, W)`` → ``(N, 3, H, W)``.

    Raises:
        ValueError: if ``value_range`` is not ``(low, high)`` with ``low < high``, or values leave it
            by more than :data:`histgan.images.RANGE_TOLERANCE` of its width (then say which range the data is in).
    """
    lo, hi = _check_range(value_range)
    t = _as_batch(images, name)
    u = (t - lo) / (hi - lo)
    if u.numel() and (u.min() < -RANGE_TOLERANCE or u.max() > 1 + RANGE_TOLERANCE):
        raise ValueError(f"{name} has values in [{float(t.min()):.3g}, {float(t.max()):.3g}], outside "
                         f"value_range={tuple(value_range)}; pass the range the images are in, e.g. (0, 1)")
    return u.clamp(0.0, 1.0)


def _check_range(value_range: Sequence[float]) -> tuple[float, float]:
    if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return float(value_range[0]), float(value_range[1])


def lab_from_unit_rgb(u: Tensor) -> Tensor:
    """sRGB in [0, 1] → CIE L*a*b* (D65, 2°, L* in 0..100): ``(N, 3, H, W)`` → ``(N, 3, H, W)``.

    Differentiable (no in-place operation, each branch finite where it is not chosen): the test-time
    refinement of :mod:`histgan.colour_code` takes gradients through it, and :func:`rgb_to_lab` and
    every metric call it on detached values. One image at a time, so the intermediates stay in cache.
    """
    if u.shape[0] > 1:
        return torch.cat([lab_from_unit_rgb(u[i : i + 1]) for i in range(u.shape[0])])
    n, _, h, w = u.shape
    t = torch.matmul(_constant(_M_XYZ_OVER_WHITE, u), srgb_to_linear(u.reshape(n, 3, h * w)))  # XYZ / white
    f = torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1.0 / 3.0), t * (_KAPPA / 116.0) + 16.0 / 116.0)
    lab = torch.matmul(_constant(_F_TO_LAB, u), f) - _constant(_LAB_OFFSET, u)[:, None]
    return lab.reshape(n, 3, h, w)


def _constant(array: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(array, dtype=like.dtype, device=like.device)


def rgb_to_lab(images: ImageLike, value_range: Sequence[float] = (-1, 1), name: str = "images") -> ImageLike:
    """sRGB → CIE L*a*b* (D65, 2° observer), vectorised: ``(N, 3, H, W)`` → ``(N, 3, H, W)``.

    The same numbers as colour-science's ``XYZ_to_Lab(sRGB_to_XYZ(rgb))`` (tested to 1e-3), computed
    in torch so that 784 images of 256² convert in seconds. L* is on 0..100 (the "reference"
    scale), never colour-science's 0..1 "domain-1" scale. Arrays in give arrays out. ``name`` names the
    argument in error messages.
    """
    lab = lab_from_unit_rgb(to_unit(images, value_range, name))
    if isinstance(images, np.ndarray):
        return lab.numpy().reshape((-1,) + images.shape[-3:])[0 if images.ndim == 3 else slice(None)]
    return lab if images.dim() == 4 else lab[0]


def lab_to_rgb(lab: Tensor, value_range: Sequence[float] = (-1, 1)) -> Tensor:
    """CIE L*a*b* ``(N, 3, H, W)`` → sRGB in ``value_range``; colours outside the gamut are clipped.

    The inverse of :func:`rgb_to_lab` for in-gamut colours (linear RGB is clipped to [0, 1]).
    """
    lo, hi = _check_range(value_range)
    lab = _as_batch(lab, "lab")
    fy = (lab[:, 0] + 16.0) / 116.0
    f = torch.stack((fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0), dim=1)
    t = torch.where(f.pow(3) > _EPSILON, f.pow(3), (116.0 * f - 16.0) / _KAPPA)
    m = torch.as_tensor(np.linalg.inv(_M_RGB_TO_XYZ) * _WHITE_XYZ[None, :], dtype=lab.dtype, device=lab.device)
    lin = torch.einsum("ij,njhw->nihw", m, t)  # clipped to [0, 1] by the encoding
    return lo + (hi - lo) * linear_to_srgb(lin).clamp(0.0, 1.0)


def as_mask(mask: ImageLike | None, like: Tensor, name: str) -> Tensor:
    """Mask ``(N|1, 1, H, W)`` or ``(1, H, W)``, non-zero = foreground → float {0, 1} ``(N, 1, H, W)``."""
    if mask is None:
        return torch.ones_like(like[:, :1])
    m = _as_batch(mask, name, channels=1).to(like.device)
    if m.shape[-2:] != like.shape[-2:] or m.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"{name} must be (N, 1, H, W) matching images {tuple(like.shape)}, got {tuple(m.shape)}")
    return (m != 0).to(like.dtype).expand(like.shape[0], 1, -1, -1)


def masked_mean(values: Tensor, mask: Tensor, name: str = "mask") -> Tensor:
    """Mean over the pixels where ``mask`` is 1: ``(N, C, H, W)``, ``(N, 1, H, W)`` → ``(N, C)``.

    Raises:
        ValueError: if some image's mask selects no pixel (its mean is undefined).
    """
    count = mask.sum(dim=(2, 3))
    if bool((count == 0).any()):
        bad = torch.nonzero(count[:, 0] == 0)[:, 0].tolist()
        raise ValueError(f"{name} selects no pixel in image(s) {bad}; a mean colour needs at least one")
    return (values * mask).sum(dim=(2, 3)) / count


def mean_lab(images: ImageLike, mask: ImageLike | None = None, value_range: Sequence[float] = (-1, 1),
             name: str = "images", mask_name: str = "mask") -> np.ndarray:
    """Mean L*a*b* colour over each image's foreground (eq (12)'s "pixel means"): ``(N, 3, H, W)`` → ``(N, 3)``.

    Every pixel is converted, then averaged (the mean of L*a*b* values is not the L*a*b* value of the
    mean RGB colour). ``mask`` as in :func:`delta_e`; float64 out. ``name`` and ``mask_name`` name the
    arguments in error messages.
    """
    return mean_of_lab(lab_from_unit_rgb(to_unit(images, value_range, name)), mask, mask_name)


def mean_of_lab(lab: Tensor, mask: ImageLike | None = None, mask_name: str = "mask") -> np.ndarray:
    """Mean of per-pixel L*a*b* values ``(N, 3, H, W)`` (from :func:`rgb_to_lab`) over each image's
    foreground → ``(N, 3)`` float64: :func:`mean_lab` for images already converted."""
    lab = _as_batch(lab, "lab")
    return masked_mean(lab, as_mask(mask, lab, mask_name), mask_name).double().cpu().numpy()


def delta_e_lab(lab_a: np.ndarray, lab_b: np.ndarray, method: str = "cie1976") -> np.ndarray:
    """ΔE between L*a*b* colours ``(N, 3)`` and ``(N, 3)`` (or ``(1, 3)``) → ``(N,)``, by colour-science.

    ``method="cie1976"`` is eq (12), the Euclidean distance; ``"cie2000"`` is CIEDE2000.
    """
    names = {"cie1976": "CIE 1976", "cie2000": "CIE 2000"}
    if method not in names:
        raise ValueError(f"method must be one of {sorted(names)}, got {method!r}")
    a, b = np.broadcast_arrays(np.atleast_2d(lab_a).astype(np.float64), np.atleast_2d(lab_b).astype(np.float64))
    with colour.utilities.domain_range_scale("reference"):  # L* on 0..100
        return np.asarray(colour.delta_E(a, b, method=names[method]), dtype=np.float64).reshape(-1)


def delta_e(
    generated: ImageLike,
    reference: ImageLike,
    generated_mask: ImageLike | None = None,
    reference_mask: ImageLike | None = None,
    method: str = "cie1976",
    value_range: Sequence[float] = (-1, 1),
) -> np.ndarray:
    """ΔE of eq (12): distance between the mean foreground L*a*b* colours of two images.

    Args:
        generated: sRGB images ``(N, 3, H, W)`` or ``(3, H, W)`` in ``value_range``.
        reference: sRGB images ``(N, 3, H, W)`` (or ``N = 1``, compared with every generated one).
        generated_mask: ``(N, 1, H, W)`` or ``(1, H, W)``, non-zero = foreground; None = all pixels.
        reference_mask: the same for ``reference``.
        method: ``"cie1976"`` (eq 12, the paper's) or ``"cie2000"`` (CIEDE2000 of the same means).
        value_range: the range pixel values are in: ``(-1, 1)`` (model space) or ``(0, 1)``.

    Returns:
        ``(N,)`` float64 array, one ΔE per image pair (``N = 1`` for unbatched inputs).

    :func:`histgan.eval.evaluate.evaluate` takes the same steps (per-pixel L*a*b*, the masked mean of
    :func:`mean_of_lab`, then :func:`delta_e_lab`), converting each output once for its colour and
    shape metrics and each reference's mean once for all the inputs it is paired with.
    """
    mean_generated = mean_lab(generated, generated_mask, value_range, "generated", "generated_mask")
    mean_reference = mean_lab(reference, reference_mask, value_range, "reference", "reference_mask")
    return delta_e_lab(mean_generated, mean_reference, method)


def jis_grade(delta_e: float | np.ndarray | Sequence[float]) -> str | np.ndarray:
    """JIS grade of ΔE values (:data:`JIS_TABLE`, lower-inclusive): a ``str`` for a scalar, else an array.

    Raises:
        ValueError: for negative or NaN values.
    """
    d = np.asarray(delta_e, dtype=np.float64)
    if np.isnan(d).any() or (d < 0).any():
        raise ValueError(f"delta_e must be non-negative numbers, got {delta_e!r}")
    edges = np.array([g.low for g in JIS_TABLE[1:]])
    names = np.array([g.grade for g in JIS_TABLE])
    out = names[np.searchsorted(edges, d, side="right")]
    return str(out) if out.ndim == 0 else out
