"""The camera of the photographic domain: vignetting, defocus, sensor noise, tone curve and JPEG.

A photograph is the scene's radiance seen through a lens onto a sensor and then processed:

1. **vignetting** — the natural cos⁴ fall-off ``V(r) = (1 + v r²)⁻²`` (``cos⁴ θ`` with ``tan θ ∝ r``),
   what is left after the camera's own lens-shading correction (``v`` ≈ 0.05–0.2: 0.3–1 stop in the
   corners);
2. **defocus** — a slight Gaussian blur (the subject a little off the focal plane);
3. **exposure** ``2^e`` and **sensor noise**, Poissonian–Gaussian in linear raw values,
   ``σ²(I) = g k_s I + g² k_r²`` with analogue gain ``g = ISO / 100`` (Foi et al., *Practical
   Poissonian-Gaussian noise modeling and fitting for single-image raw-data*, IEEE TIP 2008): shadows
   and high ISO are grainier. Levels are those of a 256² picture; a smaller one averages
   ``(256 / size)²`` pixels into one, so its ``σ`` shrinks by ``size / 256``;
4. **white balance** gains, the tone curve's shoulder, sRGB encoding, 8-bit quantisation;
5. **JPEG** at ``jpeg_quality`` with 4:2:0 chroma subsampling, encoded and decoded in memory by
   Pillow (blocking, ringing, chroma bleeding at edges). The same bytes in give the same bytes out.
"""

from __future__ import annotations

import io

import numpy as np

from histgan.data.procedural import gaussian_blur
from histgan.data.render import pixel_grid, quantise, tonemap
from histgan.srgb import linear_to_srgb

__all__ = ["NOISE_SHOT", "NOISE_READ", "vignetting", "sensor_noise", "jpeg_round_trip", "expose"]

#: Shot-noise coefficient ``k_s`` at ISO 100 for a 256² image (σ ≈ 0.003 at 18 % grey).
NOISE_SHOT = 4e-5
#: Read-noise standard deviation ``k_r`` at ISO 100 for a 256² image.
NOISE_READ = 0.0006


def vignetting(size: int, strength: float) -> np.ndarray:
    """cos⁴ fall-off ``(1 + strength r²)⁻²`` ``(H, W)``, ``r`` the distance from the centre in image-half units."""
    px, py = pixel_grid(size)
    return (1.0 + strength * (px * px + py * py)) ** -2.0


def sensor_noise(linear: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """``linear`` ``(H, W, 3)`` plus Poissonian–Gaussian noise of variance ``g k_s I + g² k_r²`` (see module doc)."""
    g = iso / 100.0
    scale = linear.shape[0] / 256.0
    sigma = np.sqrt(g * NOISE_SHOT * np.maximum(linear, 0.0) + (g * NOISE_READ) ** 2) * scale
    return linear + sigma * rng.standard_normal(linear.shape)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``(H, W, 3)`` uint8 as baseline JPEG (4:2:0) at ``quality`` in memory and decode it again."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=2, optimize=False)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def expose(radiance: np.ndarray, exposure: float, white_balance: tuple[float, float, float], vignette: float,
           defocus: float, iso: float, jpeg_quality: int, rng: np.random.Generator) -> np.ndarray:
    """Photograph linear scene radiance ``(H, W, 3)``: steps 1–5 of the module doc, ``(H, W, 3)`` uint8 sRGB.

    Args:
        radiance: linear-light scene, metered so that skin displays near its albedo at ``exposure = 0``.
        exposure: exposure compensation in stops.
        white_balance: per-channel gains in linear light.
        vignette: vignetting strength ``v``.
        defocus: blur standard deviation in image-half units.
        iso: sensor gain as an ISO speed (100 = base).
        jpeg_quality: JPEG quality, 1–100.
        rng: generator of the sensor noise (seeded by the appearance's ``sensor_seed``).
    """
    size = radiance.shape[0]
    img = radiance * vignetting(size, vignette)[..., None]  # photographs darken towards the corners
    img = gaussian_blur(img, defocus * size / 2.0)  # and are rarely in perfect focus
    # their grain grows in the shadows and with ISO; white balance scales it with the signal
    img = sensor_noise(img * 2.0 ** exposure, iso, rng) * np.array(white_balance)
    # and they are stored as JPEG: 8×8 blocks, ringing, chroma at half resolution
    return jpeg_round_trip(quantise(linear_to_srgb(tonemap(img))), jpeg_quality)
