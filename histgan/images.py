"""Small image helpers shared by training samples, evaluation figures and notebooks.

Tensors in model space ``[-1, 1]`` ``(3, H, W)`` ↔ arrays in display space ``[0, 1]`` ``(H, W, 3)``, and
:data:`RANGE_TOLERANCE`, how far values may stray outside their range before the checks that read them object.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from torch import Tensor

from histgan.io import atomic_save_png

__all__ = ["RANGE_TOLERANCE", "to_display", "to_uint8", "image_grid", "save_image_grid"]

#: How far pixel values may leave their range (float round-off of a tanh, say) before a check calls
#: them out of range: by this much outside [-1, 1] for the histogram (:mod:`histgan.histogram`), by
#: this fraction of the range's width for the colour metrics (:func:`histgan.colour_difference.to_unit`).
RANGE_TOLERANCE = 1e-3


def to_display(image: Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` tensor in [-1, 1] → ``(H, W, 3)`` float array in [0, 1] (arrays pass through).

    A ``(1, H, W)`` tensor (a mask or grey image in [0, 1]) becomes ``(H, W, 3)`` grey.
    """
    if isinstance(image, np.ndarray):
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    t = image.detach().float().cpu()
    if t.dim() != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] == 1:
        return t.clamp(0, 1).expand(3, -1, -1).permute(1, 2, 0).numpy()
    return ((t[:3] + 1.0) / 2.0).clamp(0, 1).permute(1, 2, 0).numpy()


def to_uint8(image: Tensor | np.ndarray) -> np.ndarray:
    """Like :func:`to_display`, quantised to uint8 (round half up)."""
    return np.floor(to_display(image) * 255.0 + 0.5).astype(np.uint8)


def image_grid(rows: Sequence[Sequence[Tensor | np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile images (all the same size) into one ``(H', W', 3)`` float array, white padding."""
    if not rows or not rows[0]:
        raise ValueError("rows must hold at least one image")
    cells = [[to_display(im) for im in row] for row in rows]
    h, w, _ = cells[0][0].shape
    n_cols = max(len(r) for r in cells)
    out = np.ones((len(cells) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), dtype=np.float32)
    for i, row in enumerate(cells):
        for j, im in enumerate(row):
            if im.shape != (h, w, 3):
                raise ValueError(f"all images must be {h}x{w}, image ({i}, {j}) is {im.shape[:2]}")
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = im
    return out


def save_image_grid(rows: Sequence[Sequence[Tensor | np.ndarray]], path: str | os.PathLike, pad: int = 2) -> None:
    """:func:`image_grid` saved atomically as PNG."""
    atomic_save_png(path, np.floor(image_grid(rows, pad) * 255.0 + 0.5).astype(np.uint8))
