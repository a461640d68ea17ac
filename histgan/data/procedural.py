"""Procedural fields for the renderer: smooth value noise at any coordinates, and a Gaussian blur.

Value noise (Perlin, *An image synthesizer*, SIGGRAPH 1985, in its simplest "value" form) puts
independent standard normal values on an integer lattice and interpolates them with the smoothstep
weight ``f² (3 - 2 f)``, which is C¹ across lattice lines::

    n(u, v) = lerp(lerp(L[j, i], L[j, i+1], s(fu)), lerp(L[j+1, i], L[j+1, i+1], s(fu)), s(fv))

with ``i = ⌊u⌋``, ``fu = u - i`` (likewise ``j``, ``fv``) and lattice indices taken modulo the
lattice size, so a field can be sampled on any coordinates (rotated, stretched, warped). Everything
works on whole arrays: no per-pixel Python loops.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lattice_noise", "value_noise", "grid_noise", "noise_field", "detail_weight", "gaussian_blur"]


def lattice_noise(lattice: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smoothstep-interpolated value noise of ``lattice`` ``(M, N)`` at coordinates ``u`` (columns)
    and ``v`` (rows), in lattice units; ``u`` and ``v`` broadcast together, indices wrap around."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3.0 - 2.0 * fu), fv * fv * (3.0 - 2.0 * fv)
    rows, cols = lattice.shape
    flat = np.pad(lattice, ((0, 1), (0, 1)), mode="wrap").ravel()  # row j+1, column i+1 without a modulo
    base = (iv.astype(np.int64) % rows) * (cols + 1) + iu.astype(np.int64) % cols
    top = flat[base] * (1 - fu) + flat[base + 1] * fu
    bot = flat[base + cols + 1] * (1 - fu) + flat[base + cols + 2] * fu
    return top * (1 - fv) + bot * fv


def _grid_noise(lattice: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """The same interpolation on a grid, ``tx`` ``(W,)`` and ``ty`` ``(H,)`` inside the lattice: separable,
    interpolating the lattice's rows along x first, so ``(H, W)`` costs a few array operations."""
    ix = np.minimum(tx.astype(np.int64), lattice.shape[1] - 2)
    iy = np.minimum(ty.astype(np.int64), lattice.shape[0] - 2)
    fx, fy = tx - ix, ty - iy
    fx, fy = fx * fx * (3.0 - 2.0 * fx), (fy * fy * (3.0 - 2.0 * fy))[:, None]
    rows = lattice[:, ix] * (1 - fx) + lattice[:, ix + 1] * fx
    return rows[iy] * (1 - fy) + rows[iy + 1] * fy


def _standardise(n: np.ndarray) -> np.ndarray:
    return (n - n.mean()) / (n.std() + 1e-12)


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth value noise ``(size, size)`` with zero mean and unit standard deviation: a
    ``(cells+1)²`` lattice of standard normal values spanning the image, smoothstep-interpolated."""
    lattice = rng.standard_normal((cells + 1, cells + 1))
    t = (np.arange(size) + 0.5) / size * cells
    return _standardise(_grid_noise(lattice, t, t))


def grid_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Value noise ``(size, size)`` with features ``scale`` image-half units apart (``2 / scale``
    lattice cells across the image), standardised to zero mean and unit standard deviation."""
    cells = 2.0 / scale
    n = int(np.ceil(cells)) + 1
    t = (np.arange(size) + 0.5) / size * cells
    return _standardise(_grid_noise(rng.standard_normal((n, n)), t, t))


def noise_field(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, period: int = 64) -> np.ndarray:
    """Value noise at arbitrary coordinates ``u``, ``v`` (lattice units; one feature per unit),
    standardised to zero mean and unit standard deviation over the sampled points. The lattice is
    ``period × period`` and tiles, so coordinates may be negative or large."""
    return _standardise(lattice_noise(rng.standard_normal((period, period)), u, v))


def detail_weight(scale: float, size: int) -> float:
    """Weight of a detail ``scale`` image-half units wide in a ``size``-pixel image: 0 below one pixel,
    1 above two, linear between — a camera's pixels average finer details away (no aliasing)."""
    return float(np.clip(scale * size / 2.0 - 1.0, 0.0, 1.0))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``(H, W)`` or ``(H, W, C)`` with standard deviation ``sigma`` pixels.

    Up to ``sigma = 2`` the kernel ``exp(-k² / (2 σ²))``, ``|k| <= ⌈3 σ⌉``, normalised to sum 1; above,
    three box filters of width ``w = 2 round((sqrt(4 σ² + 1) - 1) / 2) + 1``, whose cascade has variance
    ``3 (w² - 1) / 12 ≈ σ²`` and approaches the Gaussian's shape (Wells, *Efficient synthesis of Gaussian
    filters by cascaded uniform filters*, IEEE PAMI 1986), at a cost independent of ``sigma``. Borders
    are mirrored (once, before the three boxes), so a constant image stays constant; a fixed order of additions makes the result
    identical on every run. ``sigma < 0.1`` returns a copy.
    """
    out = np.asarray(image, dtype=np.float64)
    if sigma < 0.1:
        return out.copy()
    if sigma > 2.0:
        r = int(round((np.sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0))
        for axis in (0, 1):
            n = out.shape[axis]
            r_ax = min(r, (n - 1) // 3)  # reflect padding needs 3 r < length
            out = _reflect(out, 3 * r_ax, axis)
            for _ in range(3):  # each pass shortens the padded array by 2 r
                out = _box_valid(out, r_ax, axis)
        return out
    radius = int(np.ceil(3.0 * sigma))
    k = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    for axis in (0, 1):
        r = min(radius, out.shape[axis] - 1)
        padded = _reflect(out, r, axis)
        acc = np.zeros_like(out)
        for wk, off in zip(w[radius - r : radius + r + 1], range(-r, r + 1)):
            acc += wk * _window(padded, r + off, out.shape[axis], axis)
        out = acc / w[radius - r : radius + r + 1].sum()
    return out


def _reflect(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    return np.pad(a, pad, mode="reflect")


def _window(a: np.ndarray, start: int, n: int, axis: int) -> np.ndarray:
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(start, start + n)
    return a[tuple(sl)]


def _box_valid(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over ``2 r + 1`` neighbours along ``axis`` where they all exist (``2 r`` shorter), by a running sum."""
    c = np.cumsum(a, axis=axis)
    n = a.shape[axis] - 2 * r
    first = _window(c, 2 * r, 1, axis)
    return np.concatenate([first, _window(c, 2 * r + 1, n - 1, axis) - _window(c, 0, n - 1, axis)], axis=axis) / (2 * r + 1)
