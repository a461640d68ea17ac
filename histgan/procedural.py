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

__all__ = ["lattice_noise", "value_noise", "noise_field", "gaussian_blur"]


def lattice_noise(lattice: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smoothstep-interpolated value noise of ``lattice`` ``(M, N)`` at coordinates ``u`` (columns)
    and ``v`` (rows), in lattice units; ``u`` and ``v`` broadcast together, indices wrap around."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3.0 - 2.0 * fu), fv * fv * (3.0 - 2.0 * fv)
    rows, cols = lattice.shape
    i0, j0 = iu.astype(np.int64) % cols, iv.astype(np.int64) % rows
    i1, j1 = (i0 + 1) % cols, (j0 + 1) % rows
    top = lattice[j0, i0] * (1 - fu) + lattice[j0, i1] * fu
    bot = lattice[j1, i0] * (1 - fu) + lattice[j1, i1] * fu
    return top * (1 - fv) + bot * fv


def _standardise(n: np.ndarray) -> np.ndarray:
    return (n - n.mean()) / (n.std() + 1e-12)


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth value noise ``(size, size)`` with zero mean and unit standard deviation: a
    ``(cells+1)²`` lattice of standard normal values spanning the image, smoothstep-interpolated."""
    lattice = rng.standard_normal((cells + 1, cells + 1))
    t = (np.arange(size) + 0.5) / size * cells
    return _standardise(lattice_noise(lattice, t[None, :], t[:, None]))


def noise_field(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, period: int = 64) -> np.ndarray:
    """Value noise at arbitrary coordinates ``u``, ``v`` (lattice units; one feature per unit),
    standardised to zero mean and unit standard deviation over the sampled points. The lattice is
    ``period × period`` and tiles, so coordinates may be negative or large."""
    return _standardise(lattice_noise(rng.standard_normal((period, period)), u, v))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``(H, W)`` or ``(H, W, C)`` with standard deviation ``sigma`` pixels.

    The kernel ``exp(-k² / (2 σ²))``, ``|k| <= ⌈3 σ⌉``, is normalised to sum 1; borders are
    mirrored (``numpy.pad`` mode ``reflect``), so a constant image stays constant. A fixed order of
    additions makes the result identical on every run. ``sigma < 0.1`` returns a copy.
    """
    image = np.asarray(image, dtype=np.float64)
    radius = int(np.ceil(3.0 * sigma))
    if sigma < 0.1 or radius < 1:
        return image.copy()
    k = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w /= w.sum()
    out = image
    for axis in (0, 1):
        radius_ax = min(radius, out.shape[axis] - 1)  # reflect padding needs radius < length
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius_ax, radius_ax)
        padded = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for wk, off in zip(w, k):
            if abs(off) <= radius_ax:
                sl = [slice(None)] * out.ndim
                sl[axis] = slice(radius_ax + off, radius_ax + off + n)
                acc += wk * padded[tuple(sl)]
        out = acc / w[np.abs(k) <= radius_ax].sum()
    return out
