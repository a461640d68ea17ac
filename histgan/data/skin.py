"""Skin for the photographic domain: micro-structure fields and a skin shading model (numpy).

**Micro-structure.** Skin colour varies along two independent directions in optical density
``-log(albedo)``, one per chromophore, haemoglobin and melanin (Tsumura et al., *Image-based skin
color and texture analysis/synthesis by extracting hemoglobin and melanin information in the skin*,
SIGGRAPH 2003). The albedo is ``ρ(x) = ρ₀ exp(-(H(x) d_hb + M(x) d_mel + G(x)))`` with ``H`` the
blotches and the redder skin over the patella, ``M`` the mottling and freckles, ``G`` a grey term
(pores, grain). The surface carries a height field of pores (pits), grain and fine lines across the
leg near the joint, which tilts the normal (bump mapping: ``n' ∝ (n_x - n_z h_x, n_y - n_z h_y, n_z)``).
The creases run across the leg's axis; the other fields are isotropic and lie on the image grid.
Every field is sized in image-half units and fades out below two pixels, as a camera's pixels
average it away (:func:`histgan.data.procedural.detail_weight`).

**Shading** follows the real-time skin literature:
- per-channel normals, the red relief softest since red light travels furthest under the skin
  (Penner & Borshukov, *Pre-integrated skin shading*, GPU Pro 2, 2011);
- wrap lighting ``max(0, (n·l + w_c) / (1 + w_c))`` with ``w_R > w_G > w_B`` and a red band at the
  terminator, ``smoothstep(0, s, D) smoothstep(2s, s, D)`` (Green, *Real-time approximations to
  subsurface scattering*, GPU Gems, 2004): a soft terminator and shadows that turn red and saturated;
- a white Blinn–Phong sheen ``max(0, n'·h)^gloss`` rising at grazing angles by Schlick's Fresnel term, ``F₀ = 0.028``
  for skin's refractive index 1.4 (Weyrich et al., *Analysis of human faces using a measurement-based
  skin reflectance model*, SIGGRAPH 2006), varying with the skin's oiliness.
"""

from __future__ import annotations

import numpy as np

from histgan.data.procedural import detail_weight, grid_noise
from histgan.data.render import KneeFrame, pixel_grid

__all__ = ["HAEMOGLOBIN", "MELANIN", "SKIN_F0", "skin_fields", "bump_normals", "skin_shading", "sheen"]

#: Optical-density direction of haemoglobin in (R, G, B): it absorbs green most, red least.
HAEMOGLOBIN = np.array([0.10, 0.80, 0.50])
#: Optical-density direction of melanin in (R, G, B): absorption rises towards short wavelengths.
MELANIN = np.array([0.35, 0.55, 0.75])
#: Normal-incidence Fresnel reflectance of skin (refractive index 1.4: ((1.4 - 1) / (1.4 + 1))² = 0.028).
SKIN_F0 = 0.028
#: Feature sizes in image-half units: blotches, small blotches, mottling, freckles, grain, pores, crease spacing.
_SCALES = dict(blotch=0.35, blotch2=0.12, mottle=0.06, freckle=0.025, grain=0.02, pore=0.012, line=0.045)


def _along_leg(frame: KneeFrame, size: int) -> np.ndarray:
    """Signed distance from the knee along the leg's axis (shin → thigh), image-half units, ``(H, W)``."""
    px, py = pixel_grid(size)
    axis = frame.up - frame.down
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    return (px - frame.knee[0]) * axis[0] + (py - frame.knee[1]) * axis[1]


def skin_fields(frame: KneeFrame, size: int, seed: int, texture: float, redness: float, mottle: float,
                relief: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optical density, height and oiliness of the skin of a leg placed by ``frame``.

    The isotropic fields (blotches, mottling, freckles, pores, grain, oiliness) lie on the image grid;
    the creases run across the leg's axis over the joint. Field ``k`` (the order of :data:`_SCALES`)
    draws from ``numpy.random.default_rng([seed, k])``, so every field is fixed by ``seed`` alone and a
    field too fine for the image (zero weight) is skipped without changing the others.

    Args:
        frame: where the leg is (:func:`histgan.data.render.knee_frame`).
        size: image side in pixels.
        seed: seed of the skin's random fields (the appearance's ``skin_seed``).
        texture: amplitude of the grey grain in optical density.
        redness: amplitude of haemoglobin blotches and of the redder patch over the patella.
        mottle: amplitude of melanin mottling and freckles.
        relief: slope amplitude of pores, grain and fine lines (height per unit feature size).

    Returns:
        ``(density, height, oil)``: ``(H, W, 3)`` optical density ``-log(ρ/ρ₀)``; ``(H, W)`` height in
        image-half units; ``(H, W)`` oiliness factor around 1.
    """
    s = _SCALES

    def field(name: str) -> np.ndarray:
        weight = detail_weight(s[name], size)
        if weight == 0.0:
            return np.zeros((size, size))
        return weight * grid_noise(np.random.default_rng([seed, list(s).index(name)]), size, s[name])

    px, py = pixel_grid(size)
    blotch, blotch2 = field("blotch"), field("blotch2")
    pc, rp = frame.patella_centre, frame.patella_radius
    over_patella = np.exp(-((px - pc[0]) ** 2 + (py - pc[1]) ** 2) / (2.0 * (1.2 * rp) ** 2))
    haemo = redness * (0.3 * (blotch + 0.5 * blotch2) + over_patella)
    mottling = field("mottle")
    melanin = mottle * (0.5 * mottling + 2.0 * np.maximum(field("freckle") - 1.8, 0.0))
    pores, grain = np.maximum(field("pore") - 1.0, 0.0), field("grain")
    grey = texture * grain + 0.15 * pores
    density = haemo[..., None] * HAEMOGLOBIN + melanin[..., None] * MELANIN + grey[..., None]
    # Creases across the leg over the joint: parallel, slightly wavy, broken up along their length.
    wave = _along_leg(frame, size) / s["line"] + 0.5 * blotch2
    lines = (0.5 + 0.5 * np.cos(2.0 * np.pi * wave)) ** 6 * np.maximum(mottling, 0.0)
    near_knee = np.exp(-((px - frame.knee[0]) ** 2 + (py - frame.knee[1]) ** 2) / (2.0 * (1.2 * frame.knee_radius) ** 2))
    lines = lines * near_knee * detail_weight(s["line"] / 3.0, size)  # a crease is about a third of its spacing wide
    height = relief * (0.5 * s["grain"] * grain - s["pore"] * pores - 0.3 * s["line"] * lines)
    oil = np.exp(0.25 * blotch)
    return density, height, oil


def bump_normals(normal: np.ndarray, height: np.ndarray, size: int) -> np.ndarray:
    """Normals ``(H, W, 3)`` of the surface displaced by ``height`` (image-half units) along the view."""
    hy, hx = np.gradient(height, 2.0 / size)
    nz = normal[..., 2]
    bumped = np.stack([normal[..., 0] - nz * hx, normal[..., 1] - nz * hy, nz], axis=-1)
    return bumped / np.maximum(np.linalg.norm(bumped, axis=-1, keepdims=True), 1e-9)


def skin_shading(normal: np.ndarray, bumped: np.ndarray, light: np.ndarray, subsurface: float,
                 ambient: float) -> np.ndarray:
    """Diffuse irradiance factor of skin per channel, ``(H, W, 3)`` (see module doc).

    ``nl_c = n·l + k_c (n'·l - n·l)`` with relief weights ``k = 1 - subsurface (0.6, 0.25, 0.1)``;
    ``D_c = max(0, (nl_c + w_c) / (1 + w_c))`` with wraps ``w = subsurface (0.45, 0.22, 0.15)``; the
    terminator band ``smoothstep(0, 0.3, D_R) smoothstep(0.6, 0.3, D_R)`` adds ``subsurface (0.15, 0.03, 0.01)``;
    the result is ``ambient_c + (1 - ambient_c) D_c`` with a slightly red ambient.
    """
    nl_s, nl_b = normal @ light, bumped @ light
    k = 1.0 - subsurface * np.array([0.6, 0.25, 0.1])
    nl = nl_s[..., None] + k * (nl_b - nl_s)[..., None]
    w = subsurface * np.array([0.45, 0.22, 0.15])
    d = np.maximum(0.0, (nl + w) / (1.0 + w))
    band = _smoothstep(0.0, 0.3, d[..., :1]) * _smoothstep(0.6, 0.3, d[..., :1])
    d = d + band * subsurface * np.array([0.15, 0.03, 0.01])  # < 0.2: the band never makes a channel darker towards the light
    amb = ambient * (1.0 + subsurface * np.array([0.25, 0.0, -0.15]))
    return amb + (1.0 - amb) * d


def sheen(bumped: np.ndarray, light: np.ndarray, gloss: float) -> np.ndarray:
    """Normalised Blinn–Phong lobe with Schlick's Fresnel gain, ``(H, W)``:
    ``F(h·v) / F₀ · (gloss + 2) / 8 · max(0, n'·h)^gloss``, ``F(c) = F₀ + (1 - F₀)(1 - c)⁵``, zero where
    the surface faces away from the light (``h`` halfway between ``l`` and the view ``v = z``)."""
    h = light + np.array([0.0, 0.0, 1.0])
    h = h / np.linalg.norm(h)
    fresnel = (SKIN_F0 + (1.0 - SKIN_F0) * (1.0 - h[2]) ** 5) / SKIN_F0
    nh = np.maximum(bumped @ h, 0.0)
    return fresnel * (gloss + 2.0) / 8.0 * nh ** gloss * (bumped @ light > 0.0)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
