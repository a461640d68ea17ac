"""Example images for the book's first pages: a photograph that ships with matplotlib, one synthetic knee."""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["sample_photograph", "sample_knee"]


def sample_photograph(size: int = 128) -> Tensor:
    """A real photograph that ships with matplotlib (Grace Hopper), centre-cropped and resized.

    No download: the JPEG is part of matplotlib's installed sample data.

    Args:
        size: side of the square output in pixels (``>= 8``).

    Returns:
        ``(1, 3, size, size)`` float32 tensor in model space [-1, 1].
    """
    import matplotlib.cbook
    import matplotlib.image
    import torch

    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    rgb = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    h, w, _ = rgb.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = torch.from_numpy(np.array(rgb[top : top + side, left : left + side, :3], dtype=np.float32))
    x = crop.permute(2, 0, 1).unsqueeze(0) / 255.0
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous()


def sample_knee(size: int = 128, seed: int = 0) -> tuple[Tensor, Tensor]:
    """One synthetic "real" knee (domain Y of :mod:`histgan.data.synthetic`) and its foreground mask.

    Args:
        size: side of the square image in pixels (``>= 16``).
        seed: seed of the knee's shape and appearance (skin tone, light, background).

    Returns:
        ``(image, mask)``: ``(1, 3, size, size)`` float32 in [-1, 1] and ``(1, 1, size, size)`` in {0, 1}.
    """
    import torch

    from histgan.data.render import geometry, render_y
    from histgan.data.sampling import sample_appearance, sample_shape

    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    rng = np.random.default_rng(seed)
    shape = sample_shape(rng)
    rgb = render_y(shape, sample_appearance(rng), size)
    image = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0
    mask = torch.from_numpy(geometry(shape, size).mask.astype(np.float32)).reshape(1, 1, size, size)
    return image.contiguous(), mask
