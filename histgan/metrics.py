"""Shape metrics: SSIM, PSNR, foreground IoU; the colour metrics are in :mod:`histgan.colour_difference`.

What each number means, and where it stops meaning it:

* **ΔE** (:func:`histgan.colour_difference.delta_e`, eq 12) and its **JIS grade**
  (:func:`histgan.colour_difference.jis_grade`, Table 1) — the colour of the foreground as a whole,
  not its shading: see :mod:`histgan.colour_difference`.
* **SSIM** (:func:`ssim`, Wang et al. 2004, Gaussian window 11, σ = 1.5, K1 = 0.01, K2 = 0.03,
  data range 1) — local agreement of mean, contrast and structure. Against ground truth it is the
  shape-and-appearance score; output against *input* on lightness (L*/100) inside the input's mask
  is the score for data without ground truth. Limit: recolouring legitimately changes the
  lightness level and contrast, which SSIM's luminance and contrast terms also penalise, so a
  perfect translation does not score 1 against its input; compare models with each other.
* **Foreground SSIM against the truth** (:func:`foreground_ssim`) — the output's foreground pasted
  onto the truth's background (:func:`composite`), so the 11 × 11 window never compares a
  background the masked colour code cannot encode, then SSIM averaged over the input's mask;
  optionally after a Gaussian low-pass (:func:`gaussian_lowpass`, σ from :func:`lowpass_sigma`),
  so that a different draw of fine skin texture is not counted as a shape error.
* **PSNR** (:func:`psnr`) — 10 log10(1 / MSE) on [0, 1] values; pixel-exact agreement, harsh on
  small shifts that SSIM forgives. Identical images give ``inf``.
* **Foreground IoU** (:func:`foreground_iou`) — segment the output into foreground / background
  by nearest mean colour (the reference's mean foreground vs. mean background L*a*b*), and compare
  with the input's mask. Measures whether the silhouette survived. Limits: meaningless when the
  reference's background resembles skin, when the model paints a background unlike the
  reference's, or when deep shadows sit nearer the background colour; NaN when the reference has
  no background pixels.

All functions are vectorised over images (no per-pixel Python loops). Images are sRGB in model
space [-1, 1] by default, or [0, 1] with ``value_range=(0, 1)`` — stated, never guessed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from histgan.colour_difference import ImageLike, as_mask, lab_from_unit_rgb, masked_mean, to_unit

__all__ = ["ssim", "ssim_unit", "psnr", "segment_foreground", "iou", "reference_means", "foreground_iou", "filter_same",
           "lowpass_sigma", "gaussian_lowpass", "composite", "foreground_ssim", "stripe_energy", "edge_band",
           "edge_excess"]


_SSIM_K1, _SSIM_K2 = 0.01, 0.03  # Wang et al. (2004); data range 1


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _blur_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable filter ``g``, "valid" region only: ``(N, C, H, W)`` → ``(N, C, H-k+1, W-k+1)``.

    A weighted sum of ``k`` shifted views per axis: on CPU several times faster than a depthwise
    ``conv2d`` with a ``1 × k`` kernel, and the same numbers.
    """
    k = g.numel()
    for dim in (-1, -2):
        size = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, size) * float(g[0])
        for i in range(1, k):
            out.add_(x.narrow(dim, i, size), alpha=float(g[i]))
        x = out
    return x


def filter_same(x: Tensor, taps: Tensor) -> Tensor:
    """Separable filter with the 1-D ``taps`` (odd length) along both axes, mirrored borders, same size.

    ``(N, C, H, W)`` → ``(N, C, H, W)``: each axis is padded by reflection, then filtered "valid".
    """
    r = taps.numel() // 2
    if taps.numel() % 2 == 0 or r >= min(x.shape[-2:]):
        raise ValueError(f"taps must have odd length below twice the image side {tuple(x.shape[-2:])}, got {taps.numel()}")
    return _blur_valid(nnf.pad(x, (r, r, r, r), mode="reflect"), taps.to(x.dtype))


#: σ of the low-pass before the texture-blind SSIM, in pixels at 64² (scaled with the image side).
LOWPASS_SIGMA_64 = 1.5


def lowpass_sigma(size: int) -> float:
    """The low-pass σ for images of side ``size``: :data:`LOWPASS_SIGMA_64` × ``size`` / 64."""
    return LOWPASS_SIGMA_64 * size / 64.0


def gaussian_lowpass(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of standard deviation ``sigma`` px (taps to ±3σ), mirrored borders: same shape."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    radius = min(max(1, math.ceil(3.0 * sigma)), min(x.shape[-2:]) - 1)
    return filter_same(x, _gaussian_window(2 * radius + 1, sigma, x))


def composite(foreground: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """``foreground`` where ``mask`` is non-zero, ``background`` elsewhere: ``(N, C, H, W)`` → same.

    Used to paste an output's foreground onto its ground truth's background, so that a comparison
    with the truth sees no background the masked colour code never encodes.
    """
    if foreground.shape != background.shape or mask.shape[-2:] != foreground.shape[-2:]:
        raise ValueError(f"foreground {tuple(foreground.shape)}, background {tuple(background.shape)} and mask "
                         f"{tuple(mask.shape)} must share (N, ·, H, W)")
    return torch.where(mask != 0, foreground, background)


def foreground_ssim(out_light: Tensor, gt_light: Tensor, mask: Tensor, sigma: float | None = None) -> np.ndarray:
    """SSIM of lightness against the truth over the foreground, backgrounds made equal: → ``(N,)``.

    The output's lightness ``(N, 1, H, W)`` (in [0, 1]) is composited onto the truth's background
    (:func:`composite`, outside ``mask``), optionally both are low-passed (:func:`gaussian_lowpass`,
    ``sigma`` px; a different draw of fine skin texture then costs little), and the SSIM map
    (:func:`ssim_unit`) is averaged over ``mask``. Pixels outside the mask cannot change the result.
    """
    a, b = composite(out_light, gt_light, mask), gt_light
    if sigma is not None:
        a, b = gaussian_lowpass(a, sigma), gaussian_lowpass(b, sigma)
    return ssim_unit(a, b, mask)


def ssim_unit(a: Tensor, b: Tensor, mask: Tensor | None = None, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM (Wang et al. 2004) of images already in [0, 1], any channel count: ``(N, C, H, W)`` → ``(N,)``.

    The SSIM map is computed where the whole window fits (no padding), averaged over channels, then
    over the pixels of ``mask`` ``(N, 1, H, W)`` (cropped to that region); NaN where it selects none.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"SSIM needs two (N, C, H, W) tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if window % 2 == 0 or min(a.shape[-2:]) < window:
        raise ValueError(f"window must be odd and fit the images {tuple(a.shape[-2:])}, got {window}")
    c = a.shape[1]
    stats = _blur_valid(torch.cat((a, b, a * a, b * b, a * b), dim=1), _gaussian_window(window, sigma, a))
    mu_a, mu_b, aa, bb, ab = stats.split(c, dim=1)
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2
    num = (2 * mu_a * mu_b + c1) * (2 * (ab - mu_a * mu_b) + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (aa - mu_a**2 + bb - mu_b**2 + c2)
    smap = (num / den).mean(dim=1, keepdim=True)
    r = window // 2
    m = torch.ones_like(smap) if mask is None else mask[..., r:-r, r:-r].to(smap.dtype)
    count = m.sum(dim=(2, 3))
    out = (smap * m).sum(dim=(2, 3)) / count.clamp_min(1)
    return torch.where(count > 0, out, torch.nan)[:, 0].double().cpu().numpy()


def ssim(
    a: ImageLike,
    b: ImageLike,
    mask: ImageLike | None = None,
    value_range: Sequence[float] = (-1, 1),
    channels: str = "luminance",
) -> np.ndarray:
    """SSIM of two sRGB image batches ``(N, 3, H, W)`` → ``(N,)``; an image with itself gives 1.

    Args:
        a, b: images in ``value_range`` (``(3, H, W)`` is a batch of one).
        mask: ``(N, 1, H, W)``, non-zero = pixels to average the SSIM map over (None = all).
        value_range: the range pixel values are in.
        channels: ``"luminance"`` — SSIM of lightness L*/100 (shape and shading, not hue); ``"rgb"``
            — the mean of the per-channel SSIMs of the [0, 1] sRGB values.
    """
    ua, ub = to_unit(a, value_range, "a"), to_unit(b, value_range, "b")
    if channels == "luminance":
        ua, ub = lab_from_unit_rgb(ua)[:, :1] / 100.0, lab_from_unit_rgb(ub)[:, :1] / 100.0
    elif channels != "rgb":
        raise ValueError(f"channels must be 'luminance' or 'rgb', got {channels!r}")
    return ssim_unit(ua, ub, None if mask is None else as_mask(mask, ua, "mask"))


def psnr(a: ImageLike, b: ImageLike, mask: ImageLike | None = None, value_range: Sequence[float] = (-1, 1)) -> np.ndarray:
    """PSNR in dB, ``10 log10(1 / MSE)`` of the [0, 1] sRGB values over ``mask``: → ``(N,)``; inf if equal."""
    ua, ub = to_unit(a, value_range, "a"), to_unit(b, value_range, "b")
    mse = masked_mean(((ua - ub) ** 2).mean(dim=1, keepdim=True), as_mask(mask, ua, "mask"))[:, 0]
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(mse.double().cpu().numpy())


def segment_foreground(lab: Tensor, fg_lab: Tensor, bg_lab: Tensor) -> Tensor:
    """Nearest-mean segmentation: ``(N, 3, H, W)`` L*a*b*, means ``(N, 3)`` → bool ``(N, 1, H, W)``.

    A pixel is foreground when it is nearer (eq 12 distance) the foreground mean than the background mean.
    """
    d_fg = ((lab - fg_lab[:, :, None, None]) ** 2).sum(dim=1, keepdim=True)
    d_bg = ((lab - bg_lab[:, :, None, None]) ** 2).sum(dim=1, keepdim=True)
    return d_fg < d_bg


def iou(pred: Tensor, target: Tensor) -> np.ndarray:
    """Intersection over union of boolean masks ``(N, 1, H, W)`` → ``(N,)``; NaN where both are empty."""
    inter = (pred & target).sum(dim=(1, 2, 3)).double()
    union = (pred | target).sum(dim=(1, 2, 3)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.nan).cpu().numpy()


def reference_means(reference: ImageLike, reference_mask: ImageLike | None,
                    value_range: Sequence[float] = (-1, 1)) -> tuple[Tensor, Tensor]:
    """Mean foreground and mean background L*a*b* of references: → ``(N, 3)``, ``(N, 3)``.

    The background mean is NaN for a reference whose mask covers every pixel.
    """
    u = to_unit(reference, value_range, "reference")
    lab, m = lab_from_unit_rgb(u), as_mask(reference_mask, u, "reference_mask")
    bg_count = (1 - m).sum(dim=(2, 3))
    bg = (lab * (1 - m)).sum(dim=(2, 3)) / bg_count.clamp_min(1)
    return masked_mean(lab, m, "reference_mask"), torch.where(bg_count > 0, bg, torch.nan)


def foreground_iou(
    output: ImageLike,
    reference: ImageLike,
    reference_mask: ImageLike,
    target_mask: ImageLike,
    value_range: Sequence[float] = (-1, 1),
) -> np.ndarray:
    """IoU of the output's segmented foreground with ``target_mask`` (the input's mask): → ``(N,)``.

    The output ``(N, 3, H, W)`` is segmented by :func:`segment_foreground` with the reference's
    mean foreground and background colours (reference ``(N | 1, 3, H, W)`` with its mask). NaN where
    the reference has no background. See the module docstring for what this cannot see.
    """
    uo = to_unit(output, value_range, "output")
    fg, bg = reference_means(reference, reference_mask, value_range)
    pred = segment_foreground(lab_from_unit_rgb(uo), fg.to(uo.dtype), bg.to(uo.dtype))
    out = iou(pred, as_mask(target_mask, uo, "target_mask") > 0)
    return np.where(np.isnan(bg.double().cpu().numpy()).any(axis=1), np.nan, out)


def stripe_energy(images: Tensor) -> np.ndarray:
    """Share of each image's spectral energy in stripes: straight lines along a pixel axis.

    An image made of vertical stripes varies along x only, so its 2-D spectrum lies on the row
    ``k_y = 0``; horizontal stripes lie on the column ``k_x = 0``. Per image: the grey level (mean of
    the channels) minus its mean, the power spectrum ``|FFT|²``, and the energy on that row and column
    over all the energy. Edges of real scenes put some energy there too, so compare with real images
    (the realism table's calibration rows): a generator that paints stripes scores higher than they do.

    ``images (N, C, H, W)`` (any range) → ``(N,)`` shares in [0, 1] (NaN for a constant image).
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    grey = images.double().mean(1)
    power = torch.fft.fft2(grey - grey.mean((-2, -1), keepdim=True)).abs().square()
    axes = power[:, 0, :].sum(-1) + power[:, :, 0].sum(-1)  # the DC term is 0 after the mean is removed
    total = power.sum((-2, -1))
    return (axes / total).numpy()


def edge_band(mask: Tensor, width: int = 2) -> tuple[Tensor, Tensor]:
    """The inner edge band of masks ``(N, 1, H, W)`` and what lies deeper: pixels of the mask within
    ``width`` pixels (chessboard distance) of a background pixel, and the rest of the mask. The image's
    border is not an edge (only background pixels are). Returns two ``{0, 1}`` masks of ``mask``'s shape."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive number of pixels, got {width!r}")
    m = (mask != 0).to(torch.float32)
    near_background = nnf.max_pool2d(1 - m, 2 * width + 1, stride=1, padding=width)
    band = m * near_background
    return band, m - band


def edge_excess(out_lab: Tensor, gt_lab: Tensor, mask: Tensor, width: int = 2) -> np.ndarray:
    """How much worse an output's colour is along its silhouette's edge than inside it, against the truth.

    Per image: the mean per-pixel CIE76 ΔE between output and true target over the mask's inner edge band
    (:func:`edge_band`) minus the same mean over the deeper interior. A translation with the truth's colour
    everywhere scores 0; a different draw of skin texture raises both means alike; bright or coloured rims
    along the edge, or a silhouette that bleeds into its backdrop, raise the first only.
    ``out_lab``, ``gt_lab (N, 3, H, W)`` in L*a*b*, ``mask (N, 1, H, W)`` → ``(N,)`` (NaN where the band or
    the interior is empty).
    """
    band, inner = edge_band(mask, width)
    de = (out_lab - gt_lab).double().norm(dim=1, keepdim=True)
    mean = lambda w: (de * w).sum((1, 2, 3)) / w.double().sum((1, 2, 3))  # noqa: E731  (0/0 → NaN)
    return (mean(band.double()) - mean(inner.double())).cpu().numpy()
