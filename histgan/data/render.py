"""Procedural knee renderer (numpy, vectorised): a knee shape rendered as a grey simulator image (X)
or as a skin-toned photograph (Y).

Geometry. The leg lies in the image plane. Each part is a 2D primitive with an axis and a radius —
thigh and shin are tapered capsules meeting at the knee joint, the femoral condyles a disc at the
joint (the knee is wider there), the patella a small disc on the convex side of the bend. Their
signed distances ``s_i`` are blended by the polynomial smooth minimum (Quilez)::

    h = clip(1/2 + (s_b - s_a) / (2k), 0, 1),   smin(s_a, s_b) = lerp(s_b, s_a, h) - k h (1 - h)

and the same weight ``h`` blends each primitive's radius ``r`` and its offset ``v = p - c`` from the
axis. The 3D surface is the tube around that blended axis: at depth ``u = -s`` inside the outline
the distance from the axis is ``d = r - u``, the height ``z = sqrt(r² - d²)`` and the unit normal
``n = (d v/|v|, z) / r``. Shading is Lambertian with ambient, ``a + (1 - a) max(0, n·l)``; the
silhouette is anti-aliased by analytic coverage ``clip(1/2 - s/Δ, 0, 1)`` (Δ = pixel size), and
the mask is ``s < 0``. Everything is computed on whole pixel grids: no per-pixel Python loops.

Appearance (domain Y) is applied in linear light and encoded to sRGB at the end. This module's
``render_y`` is the ``plain`` Y domain; the photographic one is :func:`histgan.data.photo.render_photo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histgan.data.procedural import value_noise
from histgan.srgb import linear_to_srgb, srgb_to_linear

__all__ = ["KneeShape", "SkinAppearance", "Geometry", "KneeFrame", "geometry", "silhouette", "knee_frame", "light_direction",
           "render_x", "render_y", "pixel_grid", "quantise", "tonemap",
           "meter", "backdrop_gradient", "edge_side", "X_ALBEDO", "X_BACKGROUND"]

#: Grey level of the simulator's material under full light (domain X).
X_ALBEDO = 0.90
#: Grey level of the simulator's plain dark background (domain X).
X_BACKGROUND = 0.03
#: Ambient term ``a`` of the Lambertian shading.
AMBIENT = 0.15
#: Ambient term of domain Y: higher, since light scattered under the skin fills its shadows.
AMBIENT_Y = 0.25


@dataclass(frozen=True)
class KneeShape:
    """Shape and lighting of one knee (lengths in units of half the image side)."""

    bend: float  # knee flexion in degrees; the sign says to which side the knee points
    rotation: float  # in-plane rotation of the whole leg, degrees (0 = thigh points straight up)
    scale: float  # overall size factor applied to every radius
    shift_x: float  # knee-joint position, image-half units (0 = centre, +1 = right edge)
    shift_y: float  # same, downwards
    thigh_radius: float  # thigh radius at the far (top) end
    shin_radius: float  # shin radius at the far (bottom) end
    knee_radius: float  # radius of the condyle disc at the joint (the knee is wider there)
    patella: float  # patella radius as a fraction of knee_radius
    light_azimuth: float  # light direction in the image plane, degrees (0 = from the right)
    light_elevation: float  # light elevation above the image plane, degrees (90 = from the viewer)


@dataclass(frozen=True)
class SkinAppearance:
    """Appearance of one "real" image (domain Y): skin, camera and background. sRGB values in [0, 1]."""

    tone: float  # Monk Skin Tone, continuous in [1, 10] (interpolated between swatches)
    albedo: tuple[float, float, float]  # skin sRGB albedo: the interpolated swatch, jittered
    exposure: float  # exposure compensation in stops (0 = neutral: foreground mean = albedo)
    white_balance: tuple[float, float, float]  # per-channel gains in linear light (1, 1, 1 = neutral)
    texture: float  # relative amplitude of the multiplicative skin texture
    subsurface: float  # strength of the red tint in shadows (sub-surface scattering), 0..1
    bg_top: tuple[float, float, float]  # background sRGB colour at one end of the gradient
    bg_bottom: tuple[float, float, float]  # background sRGB colour at the other end
    bg_angle: float  # direction of the background gradient, degrees
    edge_angle: float  # direction of the floor/wall edge, degrees
    edge_offset: float  # signed distance of that edge from the centre, image-half units
    edge_gain: float  # brightness factor of the far side of the edge (the floor or the wall)
    bg_texture: float  # relative amplitude of the faint background texture
    noise_seed: int  # seed of both texture fields


@dataclass(frozen=True)
class Geometry:
    """Per-pixel rendering of a shape: ``coverage`` in [0, 1], ``mask`` bool, Lambert ``diffuse``
    ``max(0, n·l)`` in [0, 1], the relative depth ``depth = z / r`` in [0, 1] and the ``height`` ``z``
    above the image plane (image-half units), all ``(H, W)``; the unit ``normal`` ``(H, W, 3)``."""

    coverage: np.ndarray
    mask: np.ndarray
    diffuse: np.ndarray
    depth: np.ndarray
    height: np.ndarray
    normal: np.ndarray


@dataclass(frozen=True)
class KneeFrame:
    """Where a shape's parts are, in image-half units: the knee joint, unit directions of thigh and
    shin and of the convex side of the bend (``front``), the condyle radius and the patella disc."""

    knee: np.ndarray  # (2,) knee-joint position (x rightwards, y downwards)
    up: np.ndarray  # (2,) unit direction from the knee along the thigh
    down: np.ndarray  # (2,) unit direction from the knee along the shin
    front: np.ndarray  # (2,) unit direction of the convex side of the bend (where the patella is)
    knee_radius: float  # condyle radius (scaled)
    patella_centre: np.ndarray  # (2,) centre of the patella disc
    patella_radius: float  # patella radius (scaled)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], ``x`` rightwards ``(1, W)``, ``y`` downwards ``(H, 1)``."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    return t[None, :], t[:, None]


def _capsule(px, py, a, b, ra, rb):
    """Tapered capsule a→b (radii ra→rb): signed distance ``s``, offset ``v`` from the axis, radius ``r``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip(((px - a[0]) * dx + (py - a[1]) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    vx, vy = px - (a[0] + t * dx), py - (a[1] + t * dy)
    r = ra + t * (rb - ra)
    return np.hypot(vx, vy) - r, vx, vy, r


def _disc(px, py, c, r):
    vx, vy = px - c[0], py - c[1]
    return np.hypot(vx, vy) - r, vx, vy, np.full_like(vx, r)


def _smin(p, q, k):
    """Polynomial smooth minimum of two primitives ``(s, vx, vy, r)``, blending all four fields."""
    h = np.clip(0.5 + 0.5 * (q[0] - p[0]) / k, 0.0, 1.0)
    s = q[0] + h * (p[0] - q[0]) - k * h * (1.0 - h)
    w = h * h * (3.0 - 2.0 * h)  # C¹ weight for the fields: no Mach bands where the blend ends
    return (s, *(qi + w * (pi - qi) for pi, qi in zip(p[1:], q[1:])))


def knee_frame(shape: KneeShape) -> KneeFrame:
    """Positions and directions of the parts of ``shape`` (see :class:`KneeFrame`)."""
    sc, rot = shape.scale, np.radians(shape.rotation)
    half = np.radians(shape.bend) / 2.0
    knee = np.array([shape.shift_x, shape.shift_y])
    up = np.array([np.sin(rot - half), -np.cos(rot - half)])  # thigh direction
    down = np.array([-np.sin(rot + half), np.cos(rot + half)])  # shin direction
    front = -(up + down)  # convex side of the bend
    nf = np.linalg.norm(front)
    front = front / nf if nf > 1e-6 else np.array([np.cos(rot), np.sin(rot)]) * np.sign(shape.bend or 1.0)
    rk = shape.knee_radius * sc
    rp = shape.patella * rk
    return KneeFrame(knee=knee, up=up, down=down, front=front, knee_radius=rk,
                     patella_centre=knee + (rk - 0.75 * rp) * front, patella_radius=rp)


def _signed_distance(shape: KneeShape, size: int):
    """Blended signed distance of the leg (negative inside) with blended axis offset and radius."""
    px, py = pixel_grid(size)
    f = knee_frame(shape)
    knee, up, down, front, rk, rp = f.knee, f.up, f.down, f.front, f.knee_radius, f.patella_radius
    thigh = _capsule(px, py, knee, knee + 3.0 * up, 0.80 * rk, shape.thigh_radius * shape.scale)
    shin = _capsule(px, py, knee, knee + 3.0 * down, 0.72 * rk, shape.shin_radius * shape.scale)
    condyle = _disc(px, py, knee - 0.10 * rk * front, rk)
    patella = _disc(px, py, f.patella_centre, rp)
    leg = _smin(thigh, shin, 0.50 * rk)
    leg = _smin(leg, condyle, 0.45 * rk)
    return _smin(leg, patella, 0.60 * rp)


def silhouette(shape: KneeShape, size: int) -> np.ndarray:
    """Anti-aliased coverage ``clip(1/2 - s/Δ, 0, 1)`` of ``shape`` alone, ``(size, size)`` in [0, 1]."""
    return _coverage(_signed_distance(shape, size)[0], size)


def _coverage(s: np.ndarray, size: int) -> np.ndarray:
    return np.clip(0.5 - s / (2.0 / size), 0.0, 1.0)


def geometry(shape: KneeShape, size: int) -> Geometry:
    """Render ``shape`` at ``size × size``: coverage, mask, diffuse term and depth (see module doc)."""
    s, vx, vy, r = _signed_distance(shape, size)
    pixel = 2.0 / size
    coverage = _coverage(s, size)
    u = np.clip(-s, 0.25 * pixel, r)  # depth below the outline; edge pixels shade as the rim
    d = r - u
    z = np.sqrt(np.maximum(r * r - d * d, 0.0))
    vn = np.maximum(np.hypot(vx, vy), 1e-9)
    nx, ny, nz = d * vx / vn / r, d * vy / vn / r, z / r
    lx, ly, lz = light_direction(shape)
    diffuse = np.clip(nx * lx + ny * ly + nz * lz, 0.0, 1.0)
    return Geometry(coverage=coverage, mask=s < 0.0, diffuse=diffuse, depth=nz,
                    height=np.where(s < 0.0, z, 0.0), normal=np.stack([nx, ny, nz], axis=-1))


def light_direction(shape: KneeShape) -> np.ndarray:
    """Unit vector ``l`` ``(3,)`` towards the light: x rightwards, y downwards, z towards the viewer."""
    az, el = np.radians(shape.light_azimuth), np.radians(shape.light_elevation)
    return np.array([np.cos(el) * np.cos(az), -np.cos(el) * np.sin(az), np.sin(el)])


def render_x(shape: KneeShape, size: int, geo: Geometry | None = None) -> np.ndarray:
    """Domain X: grey Lambertian shading on a plain dark background, ``(H, W, 3)`` uint8.

    Like a simple 3D viewer, the shading ``X_ALBEDO (a + (1 - a) max(0, n·l))`` is written to the
    display without gamma encoding (more contrast than a photograph of the same shape).
    """
    geo = geometry(shape, size) if geo is None else geo
    fg = X_ALBEDO * (AMBIENT + (1.0 - AMBIENT) * geo.diffuse)
    grey = geo.coverage * fg + (1.0 - geo.coverage) * X_BACKGROUND
    return np.repeat(quantise(grey)[:, :, None], 3, axis=2)


def quantise(c: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] (clipped) to uint8 by rounding ``⌊255 c + 1/2⌋``."""
    return np.floor(np.clip(c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _background(app: SkinAppearance, size: int, rng: np.random.Generator) -> np.ndarray:
    """Linear-light background ``(H, W, 3)``: gradient, floor/wall edge, faint texture."""
    bg = backdrop_gradient(app, size)
    side, step = edge_side(app, size)
    bg = bg * (1.0 + (app.edge_gain - 1.0) * step)[..., None]
    grain = value_noise(rng, size, 16) + 0.5 * value_noise(rng, size, 32)  # same texture at every size
    return bg * (1.0 + app.bg_texture * grain[..., None])


def backdrop_gradient(app: SkinAppearance, size: int) -> np.ndarray:
    """Linear-light gradient ``(H, W, 3)`` from ``app.bg_top`` to ``app.bg_bottom`` along ``app.bg_angle``."""
    px, py = pixel_grid(size)
    ga = np.radians(app.bg_angle)
    t = np.clip(0.5 + 0.5 * (px * np.cos(ga) + py * np.sin(ga)), 0.0, 1.0)[..., None]
    top, bottom = srgb_to_linear(np.array(app.bg_top)), srgb_to_linear(np.array(app.bg_bottom))
    return top * (1.0 - t) + bottom * t


def edge_side(app: SkinAppearance, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance ``(H, W)`` from the floor/wall edge (image-half units) and the soft 1.5-pixel
    step ``(H, W)`` in [0, 1] that is 1 on its far side."""
    px, py = pixel_grid(size)
    ea = np.radians(app.edge_angle)
    side = px * np.cos(ea) + py * np.sin(ea) - app.edge_offset
    return side, np.clip(0.5 + side * size / 3.0, 0.0, 1.0)


def tonemap(c: np.ndarray, knee: float = 0.8) -> np.ndarray:
    """Identity below ``knee``; above, a smooth shoulder that approaches 1 (no hard clipping)."""
    w = 1.0 - knee
    return np.where(c <= knee, c, knee + w * (1.0 - np.exp(-(c - knee) / w)))


def render_y(shape: KneeShape, app: SkinAppearance, size: int, geo: Geometry | None = None) -> np.ndarray:
    """Domain Y: ``shape`` with skin appearance ``app``, ``(H, W, 3)`` uint8 sRGB.

    Skin radiance (linear) is ``albedo · shade · (1 + texture · noise) · (1 + subsurface (1 - diffuse) t)``
    with ``shade = a_Y + (1 - a_Y) max(0, n·l)`` (``a_Y`` > ``a``: sub-surface light fills shadows) and
    the red shadow tint ``t = (0.12, -0.03, -0.06)``. The camera then meters on the subject
    (:func:`meter`), so with ``exposure = 0`` and neutral white balance the foreground mean colour
    is close to ``app.albedo``; exposure and white balance act on the whole frame.
    """
    geo = geometry(shape, size) if geo is None else geo
    rng = np.random.default_rng(app.noise_seed)
    shade = AMBIENT_Y + (1.0 - AMBIENT_Y) * geo.diffuse
    pores = 0.5 * value_noise(rng, size, 21) + value_noise(rng, size, 6)  # same texture at every size
    tint = np.array([0.12, -0.03, -0.06]) * app.subsurface
    fg = (shade * (1.0 + app.texture * pores))[..., None] * (1.0 + (1.0 - geo.diffuse)[..., None] * tint)
    fg = meter(fg, geo.mask, np.array(app.albedo))
    bg = _background(app, size, rng)
    w = geo.coverage[..., None]
    img = (w * fg + (1.0 - w) * bg) * (2.0 ** app.exposure) * np.array(app.white_balance)
    return quantise(linear_to_srgb(tonemap(img)))


def meter(fg: np.ndarray, mask: np.ndarray, albedo: np.ndarray, steps: int = 4) -> np.ndarray:
    """Scale linear radiance ``fg`` ``(H, W, 3)`` so its displayed mean over ``mask`` matches ``albedo``.

    First per channel in linear light, then per channel in display space by a few fixed-point
    steps ``g <- g (target / mean)^2.2`` on the encoded, tone-mapped values (the encoding is
    concave and the shoulder compresses highlights, so a linear mean of 1 displays darker). The
    extra gain is limited to [1, 1.6]: very light skin keeps its shading instead of burning out,
    and its mean stays a little below the swatch.
    """
    if not mask.any():
        return fg * srgb_to_linear(albedo)
    fg = fg * (srgb_to_linear(albedo) / fg[mask].mean(axis=0))
    sel, gain = fg[mask], np.ones(3)
    for _ in range(steps):
        mean = linear_to_srgb(tonemap(sel * gain)).mean(axis=0)
        gain = np.clip(gain * (albedo / np.maximum(mean, 1e-6)) ** 2.2, 1.0, 1.6)
    return fg * gain
