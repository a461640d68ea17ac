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
renders the same knee; every random field has its own seed in
:class:`~histgan.data.photo_appearance.PhotoAppearance`.
"""

from __future__ import annotations

import numpy as np

from histgan.data.backdrop import background, cast_shadow
from histgan.data.camera import expose
from histgan.data.photo_appearance import PhotoAppearance
from histgan.data.procedural import gaussian_blur
from histgan.data.render import AMBIENT_Y, Geometry, KneeShape, geometry, knee_frame, light_direction
from histgan.data.render import meter
from histgan.srgb import srgb_to_linear
from histgan.data.skin import bump_normals, sheen, skin_fields, skin_shading

__all__ = ["render_photo", "occlusion"]


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
