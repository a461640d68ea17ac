"""Scenes behind the leg in the photographic domain: textured backgrounds and the leg's cast shadow.

Photographs of a knee are taken on a bed sheet, a wooden floor, against a wall, or on a studio
backdrop, never on a flat fill; and the leg, lit by one main light, casts a soft shadow onto the
surface behind it. Every surface here starts from the colour gradient of the plain domain
(:func:`histgan.data.render.backdrop_gradient`, non-skin hues) and multiplies a pattern onto it, in linear
light. Pattern details are sized in image-half units (times ``bg_scale``) and fade out below two
pixels, as a camera's pixels average them away.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from histgan.data.photo_appearance import PhotoAppearance
from histgan.data.procedural import detail_weight, gaussian_blur, noise_field
from histgan.data.render import KneeShape, backdrop_gradient, edge_side, light_direction, pixel_grid, silhouette

__all__ = ["background", "cast_shadow"]


def _rotated(angle: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    px, py = pixel_grid(size)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return px * c + py * s, -px * s + py * c


def _paper(app: PhotoAppearance, size: int, rng: np.random.Generator, light: np.ndarray) -> np.ndarray:
    """Seamless studio paper: the gradient with faint mottling."""
    u, v = _rotated(app.bg_angle, size)
    sc = 0.2 * app.bg_scale
    return 1.0 + app.bg_texture * noise_field(rng, u / sc, v / sc)


def _wall(app: PhotoAppearance, size: int, rng: np.random.Generator, light: np.ndarray) -> np.ndarray:
    """Wall meeting floor: plaster on one side, a finer carpet grain on the other, a darker corner."""
    side, step = edge_side(app, size)
    u, v = _rotated(app.edge_angle, size)
    fine = 0.015 * app.bg_scale
    plaster = app.bg_texture * noise_field(rng, u / (0.1 * app.bg_scale), v / (0.1 * app.bg_scale))
    carpet = 2.0 * app.bg_texture * noise_field(rng, u / fine, v / fine, period=128) * detail_weight(fine, size)
    corner = 1.0 - 0.35 * np.exp(-np.abs(side) / 0.12)  # less of the room's light reaches into the corner
    return (1.0 + (app.edge_gain - 1.0) * step) * corner * (1.0 + plaster * (1.0 - step) + carpet * step)


def _cloth(app: PhotoAppearance, size: int, rng: np.random.Generator, light: np.ndarray) -> np.ndarray:
    """Woven cloth: a thread pattern, fibre noise, and folds shaded by the scene's light.

    The folds are a height field ``F``; their shading is ``max(0.2, n_F·l) / l_z`` with ``n_F ∝ (-F_x, -F_y, 1)``,
    so a flat stretch of cloth keeps its colour and a fold facing away from the light darkens.
    """
    u, v = _rotated(app.bg_angle, size)
    thread = 0.02 * app.bg_scale
    weave = np.sin(np.pi * u / thread) * np.sin(np.pi * v / thread) * detail_weight(thread, size)
    fibre = noise_field(rng, u / (0.5 * thread), v / (4 * thread), period=128) * detail_weight(0.5 * thread, size)
    fold_scale = 0.45 * app.bg_scale
    folds = 0.09 * fold_scale * (noise_field(rng, u / fold_scale, v / (2.5 * fold_scale))
                                 + 0.4 * noise_field(rng, u / (0.4 * fold_scale), v / fold_scale))
    fy, fx = np.gradient(folds, 2.0 / size)
    n = np.stack([-fx, -fy, np.ones_like(fx)], axis=-1)
    shade = np.maximum(n @ light / np.linalg.norm(n, axis=-1), 0.2 * light[2]) / light[2]
    return shade * (1.0 + 0.08 * weave + 1.5 * app.bg_texture * fibre)


def _wood(app: PhotoAppearance, size: int, rng: np.random.Generator, light: np.ndarray) -> np.ndarray:
    """Wooden planks: a brightness per plank, grain stripes warped by noise along the plank, dark seams."""
    u, v = _rotated(app.bg_angle, size)
    width = 0.3 * app.bg_scale
    plank = np.floor(v / width)
    tone = 1.0 + 0.15 * np.sin(12.9898 * plank + 78.233 * rng.uniform())  # one brightness per plank
    offset = rng.uniform(0.0, 10.0, 64)[plank.astype(np.int64) % 64]  # planks start at different grain
    period = 0.07 * app.bg_scale
    warp = 1.5 * noise_field(rng, (u + offset) / (0.8 * app.bg_scale), v / (0.2 * app.bg_scale))
    grain = (0.5 + 0.5 * np.sin(2.0 * np.pi * (v / period + warp))) ** 3 * detail_weight(period / 2, size)
    seam_width = 0.012
    seam = np.exp(-0.5 * ((v / width - np.round(v / width)) * width / seam_width) ** 2) * detail_weight(seam_width, size)
    return tone * (1.0 - 0.18 * grain - 0.45 * seam) * (1.0 + app.bg_texture * noise_field(rng, u / 0.1, v / 0.1))


_PATTERNS = {"paper": _paper, "wall": _wall, "cloth": _cloth, "wood": _wood}


def background(app: PhotoAppearance, light: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Linear-light background ``(H, W, 3)`` of kind ``app.background`` (one of
    :data:`histgan.data.photo_appearance.BACKGROUNDS`).

    Args:
        app: the photographic appearance (colours, angles, edge, ``bg_texture``, ``bg_scale``).
        light: unit vector towards the light ``(3,)`` (the same light as the leg's).
        size: image side in pixels.
        rng: generator of the background's random fields (seeded by ``app.noise_seed``).
    """
    pattern = _PATTERNS[app.background](app, size, rng, light)
    return backdrop_gradient(app, size) * np.maximum(pattern, 0.0)[..., None]


def cast_shadow(shape: KneeShape, size: int, height: float, light_size: float) -> np.ndarray:
    """Soft shadow of the leg on the surface behind it, ``(H, W)`` in [0, 1] (1 = fully shadowed).

    The leg is taken as a flat silhouette ``height`` image-half units above the surface. A light at
    elevation ``e`` and azimuth ``a`` moves its shadow by ``d cos e`` away from the light, with the
    ray length ``d = height / sin e`` (at most 0.35 across the image); a light of angular size
    ``light_size`` (radians) blurs it into a penumbra of width about ``light_size · d``.
    """
    light = light_direction(shape)
    d = height / max(light[2], 1e-3)
    flat = np.hypot(light[0], light[1])
    away = -light[:2] / max(flat, 1e-9)
    offset = min(d * flat, 0.35)
    moved = replace(shape, shift_x=shape.shift_x + offset * away[0], shift_y=shape.shift_y + offset * away[1])
    sigma_px = (0.01 + light_size * d) * size / 2.0
    return np.clip(gaussian_blur(silhouette(moved, size), sigma_px), 0.0, 1.0)
