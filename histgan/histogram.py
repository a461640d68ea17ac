"""The differentiable colour histogram of Deephist (arXiv 2005.03995), eqs (1)–(6) of Kobayashi and Wada (the book's histogram page).

Pixel values ``I(x)`` lie in [-1, 1]. The range is split into ``K`` bins of width ``L = 2 / K`` with
edges ``e_j = -1 + j L`` (``j = 0..K``) and centres ``mu_k = -1 + L (k + 1/2)``. The kernel is the
derivative of the logistic sigmoid, so integrating the kernel density estimate over a bin gives a
difference of sigmoids at the bin's two edges (eq 4): the soft histogram is a difference of a
"soft CDF" evaluated at the ``K + 1`` shared edges.

Three implementations of the same numbers:

* :func:`soft_histogram_reference` — eq (3)–(4) written out as a broadcast of every pixel against
  every bin (``2 K`` sigmoids per pixel; autograd keeps an ``N·C·H·W × K`` tensor alive). For tests
  and the book.
* :func:`soft_histogram` — the one to use. Shared edges, a **window** of edges around each pixel
  (outside it the sigmoid is saturated to within float precision), pixels processed in blocks, sums
  kept in float64, and a custom backward that recomputes instead of storing: memory does not grow
  with ``K`` and, at the default bandwidth, neither does time (``benchmarks/bench_histogram.py``).
* :func:`hard_histogram` — the counting histogram, the ``B -> 0`` limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_BINS",
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
#: Pixel values may exceed [-1, 1] by this much (float round-off of a tanh, say) before it is an error.
RANGE_TOLERANCE = 1e-3
#: Elements of the ``pixels × edges`` work tensor processed at once on CPU (bounds peak memory; on
#: CUDA the whole batch is one block: a GPU wants one large kernel, not a Python loop of small ones).
_CHUNK_ELEMENTS = 1 << 19
#: Inside :func:`trusted_inputs`: skip the checks that read values back (a device synchronisation).
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("histgan_histogram_trusted", default=False)


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
    return 2.0 / bins


def window_half_width(dtype: torch.dtype) -> float:
    """Half-width ``W`` (in bandwidths) of the window of edges :func:`soft_histogram` evaluates.

    An edge ``e`` with ``|z - e| > W B`` has ``σ((z - e) / B)`` within ``σ(-W) < exp(-W)`` of 0 or
    1; :func:`soft_histogram` takes it as exactly 1 (edges below the window) or 0 (above). Bins are
    differences of consecutive edge values, so the error telescopes: on each side of a pixel it is at
    most ``exp(-W)`` in the bin next to the window and ``exp(-W)`` over all bins beyond it. Per pixel:
    at most ``exp(-W)`` in any bin and ``4 exp(-W)`` in L1 over all bins (tested with a small ``W``
    in ``tests/test_histogram.py``). ``W = ⌈ln(1 / eps)⌉ + 1`` puts the per-bin error below
    ``eps / e`` (``e^-17 ≈ 4e-8`` for float32, ``e^-37 ≈ 9e-17`` for float64).
    """
    eps = torch.finfo(dtype).eps
    return math.ceil(-math.log(eps)) + 1.0


# --------------------------------------------------------------------------------------------------
# validation


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")


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
    images: Tensor, bins: int = DEFAULT_BINS, bandwidth: float | None = None, mask: Tensor | None = None
) -> Tensor:
    """Soft histogram by direct broadcast of eq (3)–(4); same contract as :func:`soft_histogram`.

    ``Π_k(z) = σ((z − μ_k + L/2)/B) − σ((z − μ_k − L/2)/B)`` for every pixel and every bin, then the
    (masked) mean over pixels. Memory: an ``(N, C, H·W, K)`` tensor, kept alive for backward.

    Args:
        images: ``(N, C, H, W)`` float tensor, values in [-1, 1].
        bins: number of bins ``K`` per channel.
        bandwidth: kernel bandwidth ``B``; ``None`` means :func:`default_bandwidth`.
        mask: optional ``(N, 1, H, W)`` weights in [0, 1], 1 = foreground.

    Returns:
        ``(N, C, K)`` tensor of bin masses ``P(k)``.
    """
    _check_bins(bins)
    B = _resolve_bandwidth(bandwidth, bins)
    _check_images(images)
    mask = _check_mask(mask, images)
    n, c, h, w = images.shape
    L = 2.0 / bins
    mu = -1.0 + L * (torch.arange(bins, dtype=images.dtype, device=images.device) + 0.5)
    z = images.reshape(n, c, h * w, 1)
    pi = torch.sigmoid((z - mu + L / 2) / B) - torch.sigmoid((z - mu - L / 2) / B)  # eq (4)
    weights = _pixel_weights(mask, images).unsqueeze(-1)  # (N, 1, H·W, 1)
    return (pi * weights).sum(dim=2)  # eq (3)


# --------------------------------------------------------------------------------------------------
# the fast implementation: shared edges, a window of edges per pixel, recompute in backward
#
# Rows r = (image, channel), pixels z (R, P). Pixel z's window is the E consecutive edges
# e_{j0}, ..., e_{j0+E-1} around it (j0 in 0..J-1, J = K + 2 - E). Eq (3)–(4) as a soft CDF at the
# edges, S_r(e_j) = Σ_x w_x σ((z_x − e_j)/B), is accumulated per (row, j0) in a table (R·J, E) by
# index_add_ of whole window rows (no per-element index tensor); edges below a window count
# σ = 1 (a per-(row, j0) weight), edges above it σ = 0. Then P_r(k) = S_r(e_k) − S_r(e_{k+1}).


def _n_edges(bins: int, B: float, dtype: torch.dtype) -> int:
    """Edges evaluated per pixel: all ``K + 1`` or, if fewer, those within the window ``±W B``."""
    W = window_half_width(dtype)
    return min(bins + 1, int(math.ceil(2 * W * B / (2.0 / bins))) + 2)


def _window(z: Tensor, bins: int, B: float, E: int) -> tuple[Tensor, Tensor]:
    """Window start ``j0`` (long, shape of ``z``) and ``u = (z − e_{j0}) / B`` (flattened, ``(n, 1)``)."""
    L = 2.0 / bins
    # nan_to_num: a NaN pixel (unchecked input) gets a valid window and a NaN value, not a wild index
    j0 = torch.floor((z - window_half_width(z.dtype) * B + 1.0) / L).nan_to_num_(0.0).clamp_(0, bins + 1 - E)
    u = (z - (j0 * L - 1.0)) / B
    return j0.long(), u.reshape(-1, 1)


def _blocks(rows: int, pixels: int, E: int, device: torch.device):
    """Blocks ``(row slice, pixel slice)`` of about ``_CHUNK_ELEMENTS`` work elements: whole rows or part
    of one; on CUDA one block of everything."""
    if device.type == "cuda":
        yield slice(0, rows), slice(0, pixels)
        return
    per_block = max(1, _CHUNK_ELEMENTS // E)
    if pixels <= per_block:
        step = per_block // pixels
        for r in range(0, rows, step):
            yield slice(r, min(rows, r + step)), slice(0, pixels)
    else:
        for r in range(rows):
            for p in range(0, pixels, per_block):
                yield slice(r, r + 1), slice(p, min(pixels, p + per_block))


def _block_weights(weights: Tensor | None, rs: slice, ps: slice, channels: int) -> Tensor | None:
    """Pixel weights ``(rows in rs, pixels in ps)`` from per-image weights ``(N, P)`` (None: uniform)."""
    if weights is None:
        return None
    return weights[torch.arange(rs.start, rs.stop, device=weights.device) // channels, ps]


def _accumulate_rows(target: Tensor, index: Tensor, rows: Tensor) -> None:
    """``target[index[i]] += rows[i]`` in place; ``target`` (M, E), ``index`` (n,), ``rows`` (n, E).

    ``index_add_`` (a sorted, vectorised path for rows of >= 16 values) always opens a parallel
    region: on a busy 2-core machine that costs milliseconds per call, so small blocks use the
    serial ``index_put_``. On CUDA always ``index_add_`` (atomic adds; ``index_put_`` sorts first).
    """
    if rows.numel() < _CHUNK_ELEMENTS // 4 and target.device.type != "cuda":
        target.index_put_((index,), rows, accumulate=True)
    else:
        target.index_add_(0, index, rows)


def _soft_cdf_to_bins(table: Tensor, below: Tensor, bins: int) -> Tensor:
    """``(R, J, E)`` window sums and ``(R, J)`` window weights -> ``(R, K)`` bins ``S(e_k) − S(e_{k+1})``."""
    R, J, E = table.shape
    # S[r, j0 + m] += table[r, j0, m]: overlapping windows summed, as col2im (fold) does
    S = torch.nn.functional.fold(table.transpose(1, 2), (1, bins + 1), (1, E)).reshape(R, bins + 1)
    # a window starting at j0 lies above edges 0..j0-1: σ = 1 there
    S[:, : J - 1] += below.flip(1).cumsum(1).flip(1)[:, 1:]
    return S[:, :-1] - S[:, 1:]


class _SoftHistogram(torch.autograd.Function):
    """Autograd function for :func:`soft_histogram`; saves only its inputs, not the bin tensor."""

    @staticmethod
    def forward(ctx, z: Tensor, weights: Tensor | None, channels: int, bins: int, B: float) -> Tensor:  # type: ignore[override]
        # z: (R, P) pixels, R = N·C; weights: (N, P) rows summing to 1, or None for 1/P.
        (R, P), E = z.shape, _n_edges(bins, B, z.dtype)
        J = bins + 2 - E
        offsets = torch.arange(E, device=z.device, dtype=z.dtype) * (2.0 / bins / B)
        # sums in float64: a float32 running sum over 1e4 equal terms drifts by ~1e-4 (MPS has no float64)
        acc = torch.float32 if z.device.type == "mps" else torch.float64
        table = torch.zeros(R, J, E, dtype=acc, device=z.device)  # Σ w σ per (row, j0, edge of the window)
        below = torch.zeros(R, J, dtype=acc, device=z.device)  # Σ w per (row, j0)
        ones = torch.ones(max(1, _CHUNK_ELEMENTS // E), dtype=acc, device=z.device)
        for rs, ps in _blocks(R, P, E, z.device):
            zb, wb = z[rs, ps], _block_weights(weights, rs, ps, channels)
            j0, u = _window(zb, bins, B, E)
            s = (u - offsets).sigmoid_()  # σ((z − e_{j0+m}) / B), (n, E)
            if wb is not None:
                s.mul_(wb.reshape(-1, 1))
            rb = rs.stop - rs.start
            if J == 1:  # every window holds all K + 1 edges (K <= 35 at B = L): a plain sum,
                # in the input's dtype: torch's sum is a cascade (pairwise) sum, relative error ~1e-7
                # even over 1e6 terms, and 8-13x faster than converting to float64 first
                table[rs, 0] += s.view(rb, -1, E).sum(1).to(acc)
                continue
            index = (j0 + torch.arange(rb, device=z.device).unsqueeze(1) * J).reshape(-1)
            _accumulate_rows(table[rs].view(rb * J, E), index, s.to(acc))
            below[rs].view(rb * J).index_add_(0, index, ones[: len(index)] if wb is None else wb.reshape(-1).to(acc))
        out = _soft_cdf_to_bins(table, below, bins)  # eq (3)–(4)
        ctx.save_for_backward(z, weights)
        ctx.channels, ctx.bins, ctx.B = channels, bins, B
        return (out if weights is not None else out / P).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        z, weights = ctx.saved_tensors
        bins, B = ctx.bins, ctx.B
        (R, P), E = z.shape, _n_edges(bins, B, z.dtype)
        J = bins + 2 - E
        offsets = torch.arange(E, device=z.device, dtype=z.dtype) * (2.0 / bins / B)
        g = torch.nn.functional.pad(grad_out / (B if weights is not None else B * P), (1, 1))
        # dLoss/dS(e_j) = g_j − g_{j−1}, laid out per window: (R, J, E)
        g_windows = (g[:, 1:] - g[:, :-1]).unfold(1, E, 1).contiguous()
        grad_z = torch.empty_like(z)
        for rs, ps in _blocks(R, P, E, z.device):
            zb, wb = z[rs, ps], _block_weights(weights, rs, ps, ctx.channels)
            j0, u = _window(zb, bins, B, E)
            s = (u - offsets).sigmoid_()
            rb = rs.stop - rs.start
            if J == 1:  # one window for all pixels of a row: Σ_m g'_m σ'_m is a matrix-vector product
                d = torch.bmm(s.mul_(1 - s).view(rb, -1, E), g_windows[rs].reshape(rb, E, 1)).reshape(zb.shape)
            else:
                index = (j0 + torch.arange(rb, device=z.device).unsqueeze(1) * J).reshape(-1)
                gw = g_windows[rs].reshape(rb * J, E).index_select(0, index)
                d = torch.ops.aten.sigmoid_backward(gw, s).sum(-1).reshape(zb.shape)  # Σ_m g'_m σ'_m
            grad_z[rs, ps] = d if wb is None else d * wb
        return grad_z, None, None, None, None


def soft_histogram(
    images: Tensor, bins: int = DEFAULT_BINS, bandwidth: float | None = None, mask: Tensor | None = None
) -> Tensor:
    """Differentiable colour histogram of each channel. Implements eq (3)–(4) (the book's histogram page).

    ``P(k) = 1/N_fg Σ_x Π_k(I(x))`` with
    ``Π_k(z) = σ((z − μ_k + L/2)/B) − σ((z − μ_k − L/2)/B)``, bin width ``L = 2/K``.

    Equal to :func:`soft_histogram_reference` up to float round-off and the window truncation
    (below the dtype's epsilon, see :func:`window_half_width`), but it evaluates each of the
    ``K + 1`` shared edges once, only the edges within ``±W·B`` of each pixel, in chunks, and its
    backward recomputes the sigmoids instead of keeping them: peak memory does not grow with ``K``,
    and with the default bandwidth (``B = L``) neither does time.

    Args:
        images: ``(N, C, H, W)`` float tensor with values in [-1, 1] (model space).
        bins: number of bins ``K`` per channel (``>= 1``).
        bandwidth: KDE bandwidth ``B > 0``; ``None`` means ``B = L = 2 / K`` (:func:`default_bandwidth`).
        mask: optional ``(N, 1, H, W)`` weights in [0, 1], 1 = foreground. The histogram is then the
            weighted mean over pixels, so a binary mask gives exactly the histogram of the selected
            pixels (eq 3 with background excluded). No gradient flows into the mask.

    Returns:
        ``(N, C, K)`` tensor. Each histogram sums to 1 minus the mass of kernel tails beyond ±1
        (about ``σ(-(1 - |z|)/B)`` per pixel near an outer edge).

    Raises:
        ValueError: naming ``bins``, ``bandwidth``, ``images`` or ``mask`` when one is invalid.
    """
    _check_bins(bins)
    B = _resolve_bandwidth(bandwidth, bins)
    _check_images(images)
    mask = _check_mask(mask, images)
    if images.dtype in (torch.float16, torch.bfloat16):
        images = images.float()  # half precision cannot resolve a bin's mass: the histogram stays float32
    n, c, h, w = images.shape
    weights = None if mask is None else _pixel_weights(mask, images).reshape(n, h * w)
    z = images.reshape(n * c, h * w)
    return _SoftHistogram.apply(z, weights, c, bins, B).reshape(n, c, bins)


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
        L = 2.0 / h_fake.shape[-1]
        per_channel = (torch.cumsum(h_fake, -1) - torch.cumsum(h_ref, -1)).abs().sum(-1) * L
    elif kind == "hellinger":
        root_fake = h_fake.clamp_min(0).add(1e-12).sqrt()
        root_ref = h_ref.clamp_min(0).add(1e-12).sqrt()
        per_channel = torch.linalg.vector_norm(root_fake - root_ref, dim=-1) / math.sqrt(2.0)
    else:
        raise ValueError(f"kind must be 'l2', 'emd' or 'hellinger', got {kind!r}")
    return per_channel.sum(dim=1).mean()
