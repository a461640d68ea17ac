"""Random shapes and appearances of the synthetic knee benchmark (the distributions, not the files).

Skin albedo follows the Monk Skin Tone scale (E. Monk, *Monk Skin Tone Scale*, 2019,
https://skintone.google), MST 1–10, interpolated between neighbouring swatches in linear light and
jittered by a few percent per channel. Backgrounds take non-skin hues. A ``photo`` appearance first
draws everything a ``plain`` one does, from the same stream, then its photographic parameters, so
one seed gives the same skin tone and background colours in both domains.
"""

from __future__ import annotations

import colorsys

import numpy as np

from histgan.errors import HistganError
from histgan.data.photo_appearance import sample_photo_appearance
from histgan.data.render import KneeShape, SkinAppearance
from histgan.srgb import linear_to_srgb, srgb_to_linear

__all__ = ["MST_HEX", "DOMAINS", "DEFAULT_DOMAIN", "monk_albedo", "sample_shape", "sample_appearance", "check_domain"]

#: Monk Skin Tone scale, MST 1 (lightest) … MST 10 (darkest), sRGB (Monk 2019).
MST_HEX = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
           "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")
#: Y domains: ``plain`` (the simulator's shading times skin colour), ``photo`` (photographic).
DOMAINS = ("plain", "photo")
#: The Y domain of the benchmark unless told otherwise: the photographic one (the book's; ``plain`` is the
#: earlier, recoloured-render benchmark, kept one flag away).
DEFAULT_DOMAIN = "photo"


def _hex_to_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) / 255.0


def monk_albedo(tone: float) -> np.ndarray:
    """sRGB swatch of a continuous Monk tone in [1, 10]: linear-light interpolation of neighbours."""
    if not 1.0 <= tone <= 10.0:
        raise ValueError(f"tone must be in [1, 10], got {tone}")
    lin = srgb_to_linear(np.stack([_hex_to_rgb(h) for h in MST_HEX]))
    i = min(int(np.floor(tone)) - 1, 8)
    f = tone - 1.0 - i
    return linear_to_srgb(lin[i] * (1.0 - f) + lin[i + 1] * f)


def sample_shape(rng: np.random.Generator) -> KneeShape:
    """Draw a random knee shape and light direction."""
    u = rng.uniform
    return KneeShape(
        bend=float(rng.choice([-1.0, 1.0]) * u(5.0, 50.0)), rotation=float(u(-30.0, 30.0)),
        scale=float(u(0.85, 1.15)), shift_x=float(u(-0.15, 0.15)), shift_y=float(u(-0.15, 0.15)),
        thigh_radius=float(u(0.36, 0.44)), shin_radius=float(u(0.26, 0.32)),
        knee_radius=float(u(0.34, 0.40)), patella=float(u(0.45, 0.65)),
        light_azimuth=float(u(0.0, 360.0)), light_elevation=float(u(20.0, 60.0)))


def _background_colour(rng: np.random.Generator) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Two related non-skin colours: hues 70°–340° (skin lies near 10°–50°), low saturation."""
    hue, sat, val = rng.uniform(70.0, 340.0), rng.uniform(0.05, 0.40), rng.uniform(0.15, 0.85)
    a = colorsys.hsv_to_rgb(hue / 360.0, sat, val)
    hue2 = (hue + rng.uniform(-20.0, 20.0)) / 360.0
    b = colorsys.hsv_to_rgb(hue2, sat * rng.uniform(0.7, 1.3), min(val * rng.uniform(0.6, 1.2), 1.0))
    return tuple(float(c) for c in a), tuple(float(c) for c in b)


def sample_appearance(rng: np.random.Generator, domain: str = "plain") -> SkinAppearance:
    """Draw a skin tone (Monk 2019, jittered), exposure, white balance and background; for the
    ``photo`` domain then also its photographic parameters (:func:`histgan.data.photo_appearance.sample_photo_appearance`)."""
    check_domain(domain)
    u = rng.uniform
    tone = float(u(1.0, 10.0))
    jitter = np.exp(np.clip(rng.normal(0.0, 0.03, 3), -0.075, 0.075))  # ±2.5 σ
    albedo = linear_to_srgb(srgb_to_linear(monk_albedo(tone)) * jitter)
    temp, tint = u(-0.10, 0.10), u(-0.03, 0.03)
    top, bottom = _background_colour(rng)
    app = SkinAppearance(
        tone=tone, albedo=tuple(float(c) for c in albedo), exposure=float(u(-0.5, 0.5)),
        white_balance=(float(2.0 ** temp), float(2.0 ** tint), float(2.0 ** -temp)),
        texture=float(u(0.01, 0.03)), subsurface=float(u(0.3, 1.0)), bg_top=top, bg_bottom=bottom,
        bg_angle=float(u(0.0, 360.0)), edge_angle=float(u(0.0, 360.0)), edge_offset=float(u(-0.8, 0.8)),
        edge_gain=float(u(0.6, 1.4)), bg_texture=float(u(0.02, 0.06)), noise_seed=int(rng.integers(2**31)))
    return app if domain == "plain" else sample_photo_appearance(rng, app)


def check_domain(domain: str) -> None:
    """Raise :class:`HistganError` unless ``domain`` is one of :data:`DOMAINS`."""
    if domain not in DOMAINS:
        raise HistganError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
