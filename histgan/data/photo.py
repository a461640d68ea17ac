"""The photographic "real" domain (Y): a knee photographed, not rendered.

The plain domain (:func:`histgan.data.render.render_y`) is the simulator's shading times a skin colour
on a smooth backdrop; a per-pixel curve of the grey level reproduces it. A photograph of a knee
also shows what a simulator leaves out, and this renderer adds each of those in linear light:

- skin micro-structure — blotches, mottling, freckles, pores, fine lines over the joint and the
  redder skin over the patella, in the albedo and as fine relief in the shading (:mod:`histgan.data.skin`);
- the look of light scattered under the skin — soft terminator, red saturated shadows
  (:func:`histgan.data.skin.skin_shading`), a soft white sheen that moves with the light (:func:`histgan.data.skin.sheen`);
- ambient occlusion in creases and where the leg meets the surface, estimated from the height map
  as ``max(0, G_σ * z - z)`` (Luft, Colditz & Deussen, *Image enhancement by unsharp masking the
  depth buffer*, SIGGRAPH 2006): a point lower than its surroundings sees less of the room;
- the scene — textured backgrounds and the leg's soft cast shadow (:mod:`histgan.data.backdrop`);
- the camera — vignetting, defocus, exposure-dependent noise, JPEG (:mod:`histgan.data.camera`).

Shape, lighting and mask are those of :func:`histgan.data.render.geometry`, so domain X (the simulator)
renders the same knee; every random field has its own seed in :class:`PhotoAppearance`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from histgan.data.backdrop import BACKGROUNDS, background, cast_shadow
from histgan.data.camera import expose
from histgan.errors import HistganError
from histgan.data.procedural import gaussian_blur
from histgan.data.render import AMBIENT_Y, Geometry, KneeShape, SkinAppearance, geometry, knee_frame, light_direction
from histgan.data.render import meter
from histgan.srgb import srgb_to_linear
from histgan.data.skin import bump_normals, sheen, skin_fields, skin_shading

__all__ = ["PhotoAppearance", "PHOTO_RANGES", "render_photo", "sample_photo_appearance", "occlusion"]


@dataclass(frozen=True)
class PhotoAppearance(SkinAppearance):
    """Appearance of one photograph: the plain domain's skin, exposure and background colours
    (``noise_seed`` seeds the background's fields, ``texture`` is the grey grain, ``subsurface``
    the strength of the scattering look) plus the fields below. Validated on construction."""

    skin_seed: int  # seed of the skin's random fields (blotches, freckles, pores, lines, oiliness)
    sensor_seed: int  # seed of the sensor noise
    redness: float  # haemoglobin amplitude of blotches and of the patch over the patella (optical density)
    mottle: float  # melanin amplitude of mottling and freckles (optical density)
    relief: float  # slope amplitude of pores, grain and fine lines
    sheen: float  # strength of the specular sheen (1 = a full normalised Blinn–Phong lobe)
    gloss: float  # Blinn–Phong exponent of the sheen (higher = tighter highlight)
    occlusion: float  # strength of ambient occlusion in creases and at the contact with the surface
    background: str  # kind of background, one of histgan.data.backdrop.BACKGROUNDS
    bg_scale: float  # size factor of the background's pattern (weave, planks, plaster)
    shadow_height: float  # height of the leg above the surface behind it, image-half units
    shadow_opacity: float  # share of the light the cast shadow takes away, 0..1
    light_size: float  # angular size of the light in radians (sets the penumbra)
    vignetting: float  # vignetting strength v of (1 + v r²)⁻²
    defocus: float  # defocus blur standard deviation, image-half units
    iso: float  # sensor gain as ISO speed (100 = base; noise grows with it)
    jpeg_quality: int  # JPEG quality of the camera's file, 1..100

    def __post_init__(self) -> None:
        for name in ("skin_seed", "sensor_seed", "jpeg_quality"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise HistganError(f"PhotoAppearance.{name} must be an integer, got {value!r}")
        for name in ("skin_seed", "sensor_seed"):
            if not 0 <= getattr(self, name) < 2**63:
                raise HistganError(f"PhotoAppearance.{name} must be in [0, 2**63), got {getattr(self, name)}")
        if self.background not in BACKGROUNDS:
            raise HistganError(f"PhotoAppearance.background must be one of {', '.join(BACKGROUNDS)}, "
                               f"got {self.background!r}")
        for name, (lo, hi) in PHOTO_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or not lo <= value <= hi:
                raise HistganError(f"PhotoAppearance.{name} must be a number in [{lo}, {hi}], got {value!r}")


#: Accepted range of each numeric photographic parameter (what the model stays physical in).
PHOTO_RANGES: dict[str, tuple[float, float]] = {
    "redness": (0.0, 2.0), "mottle": (0.0, 2.0), "relief": (0.0, 3.0), "sheen": (0.0, 1.0),
    "gloss": (1.0, 500.0), "occlusion": (0.0, 10.0), "bg_scale": (0.1, 10.0), "shadow_height": (0.0, 1.0),
    "shadow_opacity": (0.0, 1.0), "light_size": (0.0, 2.0), "vignetting": (0.0, 2.0), "defocus": (0.0, 0.1),
    "iso": (25.0, 102400.0), "jpeg_quality": (1, 100), "subsurface": (0.0, 1.0), "texture": (0.0, 1.0),
}


def sample_photo_appearance(rng: np.random.Generator, base: SkinAppearance) -> PhotoAppearance:
    """Extend a plain appearance ``base`` with photographic parameters drawn from ``rng``."""
    u = rng.uniform
    return PhotoAppearance(
        **asdict(base), skin_seed=int(rng.integers(2**31)), sensor_seed=int(rng.integers(2**31)),
        redness=float(u(0.05, 0.30)), mottle=float(u(0.03, 0.15)), relief=float(u(0.02, 0.10)),
        sheen=float(u(0.02, 0.08)), gloss=float(u(6.0, 20.0)), occlusion=float(u(0.4, 1.0)),
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], bg_scale=float(u(0.7, 1.4)),
        shadow_height=float(u(0.03, 0.12)), shadow_opacity=float(u(0.3, 0.7)), light_size=float(u(0.1, 0.5)),
        vignetting=float(u(0.03, 0.2)), defocus=float(u(0.001, 0.006)), iso=float(100.0 * 2.0 ** u(0.0, 5.0)),
        jpeg_quality=int(rng.integers(75, 96)))


def occlusion(height: np.ndarray, size: int, strength: float, radius: float = 0.08, depth: float = 0.06) -> np.ndarray:
    """Ambient-occlusion factor ``1 / (1 + strength max(0, G_σ * z - z) / depth)``, ``(H, W)`` in (0, 1].

    Args:
        height: height map ``z`` above the surface behind the leg ``(H, W)``, image-half units.
        size: image side in pixels.
        strength: occlusion strength (0 = none).
        radius: ``σ`` of the Gaussian neighbourhood, image-half units.
        depth: depth below the neighbourhood (image-half units) at which the light is halved when ``strength = 1``.
    """
    below = np.maximum(gaussian_blur(height, radius * size / 2.0) - height, 0.0)
    return 1.0 / (1.0 + strength * below / depth)


def _exposure_gain(diffuse: np.ndarray, mask: np.ndarray, albedo: np.ndarray) -> float:
    """One gain for all channels (an exposure, not a white balance, so the scattering look keeps its
    red): :func:`histgan.data.render.meter`'s per-channel gains on the skin, averaged with the Rec. 709
    luminance weights (0.2126, 0.7152, 0.0722). 1 when no skin is in the picture."""
    if not mask.any():
        return 1.0
    gains = meter(diffuse, mask, albedo)[mask].mean(axis=0) / np.maximum(diffuse[mask].mean(axis=0), 1e-12)
    return float(gains @ np.array([0.2126, 0.7152, 0.0722]))


def render_photo(shape: KneeShape, app: PhotoAppearance, size: int, geo: Geometry | None = None) -> np.ndarray:
    """Domain Y, photographic: ``shape`` photographed with appearance ``app``, ``(H, W, 3)`` uint8 sRGB.

    Skin radiance is ``k (ρ₀ e^{-density} S_c A + sheen · oil · spec)`` (``S_c`` the skin shading,
    ``A`` the occlusion) with one exposure gain ``k`` that brings the skin's displayed mean near
    ``app.albedo`` (:func:`_exposure_gain`); the scattering look keeps it a little redder. The background is
    multiplied by the cast shadow and the occlusion; the camera (:func:`histgan.data.camera.expose`) does
    the rest. Deterministic: the same arguments give the same bytes.
    """
    geo = geometry(shape, size) if geo is None else geo
    light = light_direction(shape)
    # Skin in a photograph is never uniform: blotches, freckles, pores, creases over the joint, a
    # redder patch over the patella; and its fine relief catches the light, so the shading has texture.
    density, height, oil = skin_fields(knee_frame(shape), size, app.skin_seed,
                                       app.texture, app.redness, app.mottle, app.relief)
    bumped = bump_normals(geo.normal, height, size)
    # Creases and the surface right next to the leg are darker in photographs: less light reaches them.
    ao = occlusion(geo.height, size, app.occlusion)
    albedo = np.array(app.albedo)
    # Light scattered under the skin softens the terminator and turns shadows red and saturated.
    diffuse = srgb_to_linear(albedo) * np.exp(-density) * skin_shading(geo.normal, bumped, light, app.subsurface,
                                                                       AMBIENT_Y) * ao[..., None]
    # Skin's oily surface shows a soft white highlight that moves with the light.
    spec = app.sheen * oil * sheen(bumped, light, app.gloss)
    fg = (diffuse + spec[..., None]) * _exposure_gain(diffuse, geo.mask, albedo)
    # Knees are photographed on sheets, floors, by walls; one main light makes the leg cast a soft shadow.
    bg = background(app, light, size, np.random.default_rng(app.noise_seed))
    bg = bg * ((1.0 - app.shadow_opacity * cast_shadow(shape, size, app.shadow_height, app.light_size)) * ao)[..., None]
    w = geo.coverage[..., None]
    return expose(w * fg + (1.0 - w) * bg, app.exposure, app.white_balance, app.vignetting, app.defocus, app.iso,
                  app.jpeg_quality, np.random.default_rng(app.sensor_seed))
