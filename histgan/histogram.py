"""The differentiable colour histogram of Deephist (arXiv 2005.03995), eqs (1)–(6) of Kobayashi and Wada (the book's histogram page).

Pixel values ``I(x)`` lie in [-1, 1]. The range is split into ``K`` bins of width ``L = 2 / K``
(:func:`bin_width`) with edges ``e_j = -1 + j L`` (``j = 0..K``) and centres
``mu_k = -1 + L (k + 1/2)``. Integrating the kernel density estimate over a bin gives a difference of
the kernel's CDF at the bin's two edges (eq 4): the soft histogram is a difference of a "soft CDF"
evaluated at the ``K + 1`` shared edges. The kernel is an argument of every function here
(:mod:`histgan.kernel`); the default is the paper's, the derivative of the logistic sigmoid (eq 2).

Three implementations of the same numbers:

* :func:`soft_histogram_reference` — eq (3)–(4) written out as a broadcast of every pixel against
  every bin (``2 K`` CDF values per pixel; autograd keeps an ``N·C·H·W × K`` tensor alive). For
  tests and the book.
* :func:`soft_histogram` — the one to use. Shared edges, a **window** of edges around each pixel
  (outside it the kernel's CDF is saturated to within float precision, :func:`window_half_width`),
  computed by :mod:`histgan.histogram_window`: memory does not grow with ``K`` and, at the default
  bandwidth, neither does time (``benchmarks/bench_histogram.py``).
* :func:`hard_histogram` — the counting histogram, the ``B -> 0`` limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator

import torch
from torch import Tensor

from histgan.histogram_window import EdgeWindow, WindowedSoftHistogram
from histgan.images import RANGE_TOLERANCE
from histgan.kernel import LOGISTIC, Kernel

__all__ = [
    "DEFAULT_BINS",
    "bin_width",
    "default_bandwidth",
    "window_half_width",
    "soft_histogram",
    "soft_histogram_reference",
    "hard_histogram",
    "histogram_loss",
    "trusted_inputs",
]

#: Bins per channel used across the package unless a caller chooses otherwise.
DEFAULT_BINS = 32
#: Inside :func:`trusted_inputs`: skip the checks that read values back (a device synchronisation).
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("histgan_histogram_trusted", default=False)


def bin_width(bins: int) -> float:
    """Width ``L = 2 / K`` of each of ``K = bins`` bins splitting the pixel range [-1, 1]."""
    return 2.0 / bins


def default_bandwidth(bins: int) -> float:
    """Default KDE bandwidth ``B`` for ``bins`` bins: one bin width, ``B = L = 2 / K``.

    Deephist suggests ``B = L / 2.5``; with generated images a sharper kernel gives weaker gradients
    to pixels a bin away and, in our measurements, flattens shading (the paper's colour-versus-shape
    trade-off). ``B = L`` keeps the histogram a recognisable histogram (see the book's slider) while
    every pixel feels the bins next to its own. Tying ``B`` to ``L`` also keeps the cost of
    :func:`soft_histogram` flat in ``K`` (the window of edges a pixel touches is a fixed number of
    bandwidths wide).
    """
    _check_bins(bins)
    return bin_width(bins)


def window_half_width(dtype: torch.dtype, kernel: Kernel = LOGISTIC) -> float:
    """Half-width ``W`` (in bandwidths) of the window of edges :func:`soft_histogram` evaluates.

    ``W = ⌈t⌉ + 1`` with ``t = kernel.tail(eps)``, ``eps`` the dtype's machine epsilon, so
    ``1 − cdf(W) ≤ 1 − cdf(t + 1) < eps``. Every edge a pixel skips lies at least ``W B + L`` from it
    (:class:`histgan.histogram_window.EdgeWindow`), where its CDF is within
    ``δ = 1 − cdf(W + L/B)`` of 0 or 1; :func:`soft_histogram` takes it as exactly 1 (edges below)
    or 0 (above). Bins are differences of consecutive edge values, so the error telescopes: on each
    side of a pixel at most ``δ`` in the bin across the window's end and ``δ`` over all bins beyond.
    Per pixel (and so per histogram): **at most δ in any bin and 4 δ in L1 over all bins** (tested
    with the float32 window and with small windows in ``tests/test_histogram.py``). Logistic kernel,
    ``t = ln(1/eps)``: ``δ < e^{−(W + L/B)} ≤ eps / e^{1 + L/B}``, so ``W = 17`` for float32 and
    ``38`` for float64; the Gaussian's thinner tails give ``W = 7`` and ``10``.
    """
    eps = torch.finfo(dtype).eps
    return math.ceil(kernel.tail(eps)) + 1.0


# --------------------------------------------------------------------------------------------------
# validation


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")


def _check_kernel(kernel: Kernel) -> None:
    if not isinstance(kernel, Kernel):
        raise ValueError(f"kernel must be a histgan.kernel.Kernel such as LOGISTIC or GAUSSIAN, got {kernel!r}")


def _resolve_bandwidth(bandwidth: float | None, bins: int) -> float:
    if bandwidth is None:
        return default_bandwidth(bins)
    if not math.isfinite(float(bandwidth)) or float(bandwidth) <= 0:
        raise ValueError(f"bandwidth must be a positive number (or None for 2/bins), got {bandwidth!r}")
    return float(bandwidth)


@contextlib.contextmanager
def trusted_inputs() -> Iterator[None]:
    """Within this block, :func:`soft_histogram` and :func:`hard_histogram` check their inputs' shapes
    and types only, not their values (range, NaN/Inf, mask weights, empty masks).

    Checking values reads them back to the host: on a GPU each check waits for all queued work. A
    caller that validated its data once (the training loop: images and masks from the loader,
    generator outputs from a tanh, clamped) uses this to keep its step free of synchronisation; a NaN
    then yields a NaN histogram (never an out-of-range index), which the caller's loss check reports.
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor in [-1, 1], got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"images must not be empty, got shape {tuple(images.shape)}")
    if _TRUSTED.get():
        return
    with torch.no_grad():
        lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("images contain NaN or Inf values")
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"images must have values in [-1, 1] (model space), got range [{lo:.4g}, {hi:.4g}]; "
            "rescale with x * 2 - 1 if they are in [0, 1]"
        )


def _check_mask(mask: Tensor | None, images: Tensor) -> Tensor | None:
    if mask is None:
        return None
    n, _, h, w = images.shape
    if not isinstance(mask, Tensor) or tuple(mask.shape) != (n, 1, h, w):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have shape (N, 1, H, W) = {(n, 1, h, w)} to match images, got {shape}")
    mask = mask.detach().to(dtype=images.dtype, device=images.device)
    if _TRUSTED.get():
        return mask
    if float(mask.min()) < 0 or float(mask.max()) > 1:
        raise ValueError("mask must hold weights in [0, 1] (1 = foreground)")
    empty = (mask.flatten(1).sum(1) <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"mask is all zero for image(s) {empty}: a histogram needs at least one foreground pixel")
    return mask


def _pixel_weights(mask: Tensor | None, images: Tensor) -> Tensor:
    """Per-pixel weights ``(N, 1, H·W)`` that sum to 1 per image (the ``1/N`` of eq 3, masked)."""
    n, _, h, w = images.shape
    if mask is None:
        return images.new_full((n, 1, h * w), 1.0 / (h * w))
    m = mask.reshape(n, 1, h * w)
    return m / m.sum(dim=2, keepdim=True)


# --------------------------------------------------------------------------------------------------
# the reference implementation (eq 3–4 verbatim)


def soft_histogram_reference(
    images: Tensor, bins: int = DEFAULT_BINS, bandwidth: float | None = None, mask: Tensor | None = None,
    *, kernel: Kernel = LOGISTIC,
) -> Tensor:
    """Soft histogram by direct broadcast of eq (3)–(4); same contract as :func:`soft_histogram`.

    ``Π_k(z) = σ((z − μ_k + L/2)/B) − σ((z − μ_k − L/2)/B)`` for every pixel and every bin (``σ`` the
    kernel's CDF), then the (masked) mean over pixels. Memory: an ``(N, C, H·W, K)`` tensor, kept
    alive for backward.

    Args:
        images: ``(N, C, H, W)`` float tensor, values in [-1, 1].
        bins: number of bins ``K`` per channel.
        bandwidth: kernel bandwidth ``B``; ``None`` means :func:`default_bandwidth`.
        mask: optional ``(N, 1, H, W)`` weights in [0, 1], 1 = foreground.
        kernel: the KDE kernel (:mod:`histgan.kernel`); the logistic of eq (2) by default.

    Returns:
        ``(N, C, K)`` tensor of bin masses ``P(k)``.
    """
    _check_bins(bins)
    _check_kernel(kernel)
    B = _resolve_bandwidth(bandwidth, bins)
    _check_images(images)
    mask = _check_mask(mask, images)
    n, c, h, w = images.shape
    L = bin_width(bins)
    mu = -1.0 + L * (torch.arange(bins, dtype=images.dtype, device=images.device) + 0.5)
    z = images.reshape(n, c, h * w, 1)
    pi = kernel.cdf((z - mu + L / 2) / B) - kernel.cdf((z - mu - L / 2) / B)  # eq (4)
    weights = _pixel_weights(mask, images).unsqueeze(-1)  # (N, 1, H·W, 1)
    return (pi * weights).sum(dim=2)  # eq (3)


def soft_histogram(
    images: Tensor, bins: int = DEFAULT_BINS, bandwidth: float | None = None, mask: Tensor | None = None,
    *, kernel: Kernel = LOGISTIC,
) -> Tensor:
    """Differentiable colour histogram of each channel. Implements eq (3)–(4) (the book's histogram page).

    ``P(k) = 1/N_fg Σ_x Π_k(I(x))`` with
    ``Π_k(z) = σ((z − μ_k + L/2)/B) − σ((z − μ_k − L/2)/B)``, bin width ``L = 2/K``, ``σ`` the
    kernel's CDF (the logistic sigmoid for the kernel of eq (2)).

    Equal to :func:`soft_histogram_reference` up to float round-off and the window truncation
    (see :func:`window_half_width`), but it evaluates each of the ``K + 1`` shared edges once, only
    the edges within ``±W·B`` of each pixel, in chunks, and its backward recomputes the CDF instead
    of keeping it (:mod:`histgan.histogram_window`): peak memory does not grow with ``K``, and with
    the default bandwidth (``B = L``) neither does time.

    Args:
        images: ``(N, C, H, W)`` float tensor with values in [-1, 1] (model space).
        bins: number of bins ``K`` per channel (``>= 1``).
        bandwidth: KDE bandwidth ``B > 0``; ``None`` means ``B = L = 2 / K`` (:func:`default_bandwidth`).
        mask: optional ``(N, 1, H, W)`` weights in [0, 1], 1 = foreground. The histogram is then the
            weighted mean over pixels, so a binary mask gives exactly the histogram of the selected
            pixels (eq 3 with background excluded). No gradient flows into the mask.
        kernel: the KDE kernel (:mod:`histgan.kernel`); the logistic of eq (2) by default,
            ``kernel=GAUSSIAN`` for the Gaussian.

    Returns:
        ``(N, C, K)`` tensor. Each histogram sums to 1 minus the mass of kernel tails beyond ±1
        (about ``σ(-(1 - |z|)/B)`` per pixel near an outer edge).

    Raises:
        ValueError: naming ``bins``, ``bandwidth``, ``images``, ``mask`` or ``kernel`` when one is invalid.
    """
    _check_bins(bins)
    _check_kernel(kernel)
    B = _resolve_bandwidth(bandwidth, bins)
    _check_images(images)
    mask = _check_mask(mask, images)
    if images.dtype in (torch.float16, torch.bfloat16):
        images = images.float()  # half precision cannot resolve a bin's mass: the histogram stays float32
    n, c, h, w = images.shape
    weights = None if mask is None else _pixel_weights(mask, images).reshape(n, h * w)
    z = images.reshape(n * c, h * w)
    window = EdgeWindow(bins, bin_width(bins), B, window_half_width(z.dtype, kernel))
    return WindowedSoftHistogram.apply(z, weights, c, window, kernel).reshape(n, c, bins)


def hard_histogram(images: Tensor, bins: int = DEFAULT_BINS, mask: Tensor | None = None) -> Tensor:
    """Counting histogram (not differentiable), the ``B -> 0`` limit of :func:`soft_histogram`.

    Bin ``k`` holds values in ``[e_k, e_{k+1})``; the value 1.0 goes to the last bin.

    Args:
        images: ``(N, C, H, W)`` float tensor with values in [-1, 1].
        bins: number of bins ``K``.
        mask: optional ``(N, 1, H, W)`` weights in [0, 1]; counts are weighted and normalised.

    Returns:
        ``(N, C, K)`` tensor of bin fractions summing to 1 per image and channel.
    """
    _check_bins(bins)
    _check_images(images)
    mask = _check_mask(mask, images)
    n, c, h, w = images.shape
    z = images.detach().reshape(n * c, h * w)
    index = torch.floor((z + 1.0) * (bins / 2.0)).long().clamp_(0, bins - 1)
    weights = _pixel_weights(mask, images).expand(n, c, h * w).reshape(n * c, h * w).detach()
    out = z.new_zeros(n * c, bins).scatter_add_(1, index, weights)
    return out.reshape(n, c, bins)


def histogram_loss(h_fake: Tensor, h_ref: Tensor, kind: str = "l2") -> Tensor:
    """Distance between histograms, summed over channels and averaged over the batch. Eq (6).

    Args:
        h_fake: ``(N, C, K)`` histograms of generated images.
        h_ref: ``(N, C, K)`` histograms of the references (or ``(C, K)``, broadcast over the batch).
        kind: ``"l2"`` — eq (6), ``Σ_c ‖h_fake^c − h_ref^c‖₂``;
            ``"emd"`` — earth mover's distance in value units, ``Σ_c Σ_k |CDF_fake − CDF_ref| · L``;
            ``"hellinger"`` — ``Σ_c ‖√h_fake^c − √h_ref^c‖₂ / √2``.

    Returns:
        scalar tensor; 0 for equal histograms, positive otherwise.
    """
    if h_fake.dim() != 3:
        raise ValueError(f"h_fake must be (N, C, K), got shape {tuple(h_fake.shape)}")
    if h_ref.dim() == 2:
        h_ref = h_ref.unsqueeze(0).expand_as(h_fake)
    if h_ref.shape != h_fake.shape:
        raise ValueError(f"h_ref shape {tuple(h_ref.shape)} does not match h_fake shape {tuple(h_fake.shape)}")
    if kind == "l2":
        per_channel = torch.linalg.vector_norm(h_fake - h_ref, dim=-1)
    elif kind == "emd":
        L = bin_width(h_fake.shape[-1])
        per_channel = (torch.cumsum(h_fake, -1) - torch.cumsum(h_ref, -1)).abs().sum(-1) * L
    elif kind == "hellinger":
        root_fake = h_fake.clamp_min(0).add(1e-12).sqrt()
        root_ref = h_ref.clamp_min(0).add(1e-12).sqrt()
        per_channel = torch.linalg.vector_norm(root_fake - root_ref, dim=-1) / math.sqrt(2.0)
    else:
        raise ValueError(f"kind must be 'l2', 'emd' or 'hellinger', got {kind!r}")
    return per_channel.sum(dim=1).mean()
