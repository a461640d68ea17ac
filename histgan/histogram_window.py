"""The fast evaluation behind :func:`histgan.histogram.soft_histogram`: a window of edges per pixel.

Eq (3)–(4) as a soft CDF at the ``K + 1`` shared bin edges ``e_j = −1 + jL``:
``S_r(e_j) = Σ_x w_x cdf((z_x − e_j) / B)`` per row ``r`` = (image, channel), and
``P_r(k) = S_r(e_k) − S_r(e_{k+1})``. Each pixel evaluates only the ``E`` consecutive edges of its
window, ``e_{j0} … e_{j0+E−1}`` (``j0`` in ``0 … J−1``, ``J = K + 2 − E``); every edge it skips lies
at least ``W·B + L`` away, where the kernel's CDF is within ``1 − cdf(W + L/B)`` of 0 or 1 (the
bound is :func:`histgan.histogram.window_half_width`'s). The sums are accumulated per (row, ``j0``)
in a table ``(R·J, E)`` by ``index_add_`` of whole window rows (no per-element index tensor); edges
below a window count ``cdf = 1`` (a per-(row, ``j0``) weight), edges above it ``cdf = 0``. Pixels
are processed in blocks, sums kept in float64, and the backward recomputes the window's CDF
arguments instead of storing anything but the inputs: peak memory does not grow with ``K``.

The kernel enters only through its :class:`histgan.kernel.Kernel`: ``cdf_`` in the forward pass,
``density_`` and ``scaled_density_`` in the backward (the in-place forms: the arguments are
temporaries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from histgan.kernel import Kernel

__all__ = ["EdgeWindow", "WindowedSoftHistogram"]

#: Elements of the ``pixels × edges`` work tensor processed at once on CPU (bounds peak memory; on
#: CUDA the whole batch is one block: a GPU wants one large kernel, not a Python loop of small ones).
_CHUNK_ELEMENTS = 1 << 19


@dataclass(frozen=True)
class EdgeWindow:
    """Which of the ``K + 1`` edges ``e_j = −1 + jL`` each pixel evaluates: those within ``±W·B`` (and a bin)."""

    bins: int  # K, bins per channel
    L: float  # bin width, histgan.histogram.bin_width(K)
    B: float  # kernel bandwidth
    W: float  # half-width in bandwidths, histgan.histogram.window_half_width(dtype, kernel)

    @property
    def size(self) -> int:
        """``E``, edges evaluated per pixel: all ``K + 1`` or, if fewer, those within the window."""
        return min(self.bins + 1, int(math.ceil(2 * self.W * self.B / self.L)) + 2)

    def locate(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Window start ``j0`` (long, shape of ``z``) and ``u = (z − e_{j0}) / B`` (flattened, ``(n, 1)``)."""
        L = self.L
        # nan_to_num: a NaN pixel (unchecked input) gets a valid window and a NaN value, not a wild index
        j0 = torch.floor((z - self.W * self.B + 1.0) / L).nan_to_num_(0.0).clamp_(0, self.bins + 1 - self.size)
        u = (z - (j0 * L - 1.0)) / self.B
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
    # a window starting at j0 lies above edges 0..j0-1: cdf = 1 there
    S[:, : J - 1] += below.flip(1).cumsum(1).flip(1)[:, 1:]
    return S[:, :-1] - S[:, 1:]


class WindowedSoftHistogram(torch.autograd.Function):
    """Eq (3)–(4) by windows of edges, ``(R, P)`` pixels -> ``(R, K)``; saves only its inputs for backward.

    ``apply(z, weights, channels, window, kernel)``: ``z`` ``(R, P)`` pixels with ``R = N·C``;
    ``weights`` ``(N, P)`` rows summing to 1, or ``None`` for ``1/P``; ``channels`` ``C``; an
    :class:`EdgeWindow` and a :class:`histgan.kernel.Kernel`.
    """

    @staticmethod
    def forward(ctx, z: Tensor, weights: Tensor | None, channels: int, window: EdgeWindow, kernel: Kernel) -> Tensor:  # type: ignore[override]
        (R, P), E, bins = z.shape, window.size, window.bins
        J = bins + 2 - E
        offsets = torch.arange(E, device=z.device, dtype=z.dtype) * (window.L / window.B)
        # sums in float64: a float32 running sum over 1e4 equal terms drifts by ~1e-4 (MPS has no float64)
        acc = torch.float32 if z.device.type == "mps" else torch.float64
        table = torch.zeros(R, J, E, dtype=acc, device=z.device)  # Σ w cdf per (row, j0, edge of the window)
        below = torch.zeros(R, J, dtype=acc, device=z.device)  # Σ w per (row, j0)
        ones = torch.ones(max(1, _CHUNK_ELEMENTS // E), dtype=acc, device=z.device)
        for rs, ps in _blocks(R, P, E, z.device):
            zb, wb = z[rs, ps], _block_weights(weights, rs, ps, channels)
            j0, u = window.locate(zb)
            s = kernel.cdf_(u - offsets)  # cdf((z − e_{j0+m}) / B), (n, E)
            if wb is not None:
                s.mul_(wb.reshape(-1, 1))
            rb = rs.stop - rs.start
            if J == 1:  # every window holds all K + 1 edges (K <= 35 at B = L, logistic, float32): a plain
                # sum, in the input's dtype: torch's sum is a cascade (pairwise) sum, relative error ~1e-7
                # even over 1e6 terms, and 8-13x faster than converting to float64 first
                table[rs, 0] += s.view(rb, -1, E).sum(1).to(acc)
                continue
            index = (j0 + torch.arange(rb, device=z.device).unsqueeze(1) * J).reshape(-1)
            _accumulate_rows(table[rs].view(rb * J, E), index, s.to(acc))
            below[rs].view(rb * J).index_add_(0, index, ones[: len(index)] if wb is None else wb.reshape(-1).to(acc))
        out = _soft_cdf_to_bins(table, below, bins)  # eq (3)–(4)
        ctx.save_for_backward(z, weights)
        ctx.channels, ctx.window, ctx.kernel = channels, window, kernel
        return (out if weights is not None else out / P).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        z, weights = ctx.saved_tensors
        window, kernel = ctx.window, ctx.kernel
        (R, P), E, B = z.shape, window.size, window.B
        J = window.bins + 2 - E
        offsets = torch.arange(E, device=z.device, dtype=z.dtype) * (window.L / B)
        g = torch.nn.functional.pad(grad_out / (B if weights is not None else B * P), (1, 1))
        # dLoss/dS(e_j) = g_j − g_{j−1}, laid out per window: (R, J, E)
        g_windows = (g[:, 1:] - g[:, :-1]).unfold(1, E, 1).contiguous()
        grad_z = torch.empty_like(z)
        for rs, ps in _blocks(R, P, E, z.device):
            zb, wb = z[rs, ps], _block_weights(weights, rs, ps, ctx.channels)
            j0, u = window.locate(zb)
            t = u - offsets  # (z − e_{j0+m}) / B; d cdf(t) / dz = K(t) / B, the 1/B is in g
            rb = rs.stop - rs.start
            if J == 1:  # one window for all pixels of a row: Σ_m g'_m K(t_m) is a matrix-vector product
                d = torch.bmm(kernel.density_(t).view(rb, -1, E), g_windows[rs].reshape(rb, E, 1)).reshape(zb.shape)
            else:
                index = (j0 + torch.arange(rb, device=z.device).unsqueeze(1) * J).reshape(-1)
                gw = g_windows[rs].reshape(rb * J, E).index_select(0, index)
                d = kernel.scaled_density_(gw, t).sum(-1).reshape(zb.shape)  # Σ_m g'_m K(t_m)
            grad_z[rs, ps] = d if wb is None else d * wb
        return grad_z, None, None, None, None
