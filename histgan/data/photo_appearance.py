"""The appearance of one photograph of the photographic Y domain (:mod:`histgan.data.photo`): the
plain domain's skin, exposure and background colours plus the photographic parameters — skin fields,
sheen, occlusion, the scene behind the leg and its shadow, the camera — each checked against its
physical range, and their distribution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from histgan.data.render import SkinAppearance
from histgan.errors import HistganError

__all__ = ["BACKGROUNDS", "PhotoAppearance", "PHOTO_RANGES", "sample_photo_appearance"]

#: Kinds of background: studio paper (gradient), wall meeting floor, cloth (weave and folds), wooden planks.
BACKGROUNDS = ("paper", "wall", "cloth", "wood")


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
    background: str  # kind of background, one of BACKGROUNDS
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
