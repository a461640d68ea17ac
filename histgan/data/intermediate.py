"""True targets between two references: the benchmark's ground truth at an intermediate skin colour.

A model that morphs between two references (mixing their colour codes, or a GAN's latents between a
start set and an end set) produces frames that no real image matches — except on the synthetic
benchmark, where any appearance can be rendered. :func:`between` interpolates the *skin* of two
appearances (the colour fields below) and keeps everything else (background, camera, seeds) of the
first, so frame ``t`` has one true target: the input's knee rendered at that skin colour
(:func:`ground_truth_between`). Its foreground mean colour is what a morph should reach at ``t``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from histgan.data.render import KneeShape, SkinAppearance
from histgan.data.synthetic import RENDER_Y, appearance_from_meta, image_entry

__all__ = ["SKIN_FIELDS", "between", "ground_truth_between"]

#: The appearance fields that set the skin's colour, interpolated by :func:`between` (those a
#: domain's appearance lacks are skipped): Monk tone and albedo, the exposure and white balance that
#: scale it, and the photographic domain's scattering tint, redness and mottling.
SKIN_FIELDS = ("tone", "albedo", "exposure", "white_balance", "subsurface", "redness", "mottle")


def between(a: SkinAppearance, b: SkinAppearance, t: float) -> SkinAppearance:
    """``a`` with its skin fields moved a fraction ``t`` of the way to ``b``'s (linearly, per field and
    channel); ``t = 0`` gives ``a`` and ``t = 1`` ``a`` with ``b``'s skin. Both must be of one domain.

    Raises:
        ValueError: ``t`` outside [0, 1] or appearances of different domains.
    """
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t must lie in [0, 1] (0: the first appearance, 1: the second's skin), got {t}")
    if type(a) is not type(b):
        raise ValueError(f"appearances of different domains: {type(a).__name__} and {type(b).__name__}")
    fields = {f.name for f in dataclasses.fields(a)}
    changes = {}
    for name in SKIN_FIELDS:
        if name in fields:
            va, vb = np.asarray(getattr(a, name), float), np.asarray(getattr(b, name), float)
            v = (1.0 - t) * va + t * vb
            changes[name] = tuple(float(c) for c in v) if v.ndim else float(v)
    return dataclasses.replace(a, **changes)


def ground_truth_between(root: str | os.PathLike, x_name: str, y_a: str, y_b: str, t: float) -> np.ndarray:
    """True target of translating ``testA/x_name`` with a reference a fraction ``t`` of the way from
    ``testB/y_a``'s skin to ``testB/y_b``'s (:func:`between`); at ``t = 0`` it equals
    :func:`histgan.data.synthetic.ground_truth` ``(root, x_name, y_a)``.

    Returns:
        ``(H, W, 3)`` float32 in [0, 1], quantised to 8 bits like the files on disk.
    """
    meta, x = image_entry(root, "testA", x_name)
    domain = meta.get("domain", "plain")
    apps = [appearance_from_meta(image_entry(root, "testB", y)[1]["appearance"], domain) for y in (y_a, y_b)]
    img = RENDER_Y[domain](KneeShape(**x["shape"]), between(*apps, t), meta["size"])
    return img.astype(np.float32) / 255.0
