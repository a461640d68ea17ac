"""Small image helpers shared by training samples, evaluation figures and notebooks.

Tensors in model space ``[-1, 1]`` ``(3, H, W)`` ↔ arrays in display space ``[0, 1]`` ``(H, W, 3)``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from torch import Tensor

from histgan.io import atomic_save_png

__all__ = ["to_display", "to_uint8", "image_grid", "save_image_grid", "sample_photograph",
           "sample_knee", "plot_soft_vs_hard", "show_source", "saved_tensor_bytes"]


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


# ---- helpers the book's notebooks use to show things (never to define the method) ----------------


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
    """One synthetic "real" knee (domain Y of :mod:`histgan.synthetic`) and its foreground mask.

    Args:
        size: side of the square image in pixels (``>= 16``).
        seed: seed of the knee's shape and appearance (skin tone, light, background).

    Returns:
        ``(image, mask)``: ``(1, 3, size, size)`` float32 in [-1, 1] and ``(1, 1, size, size)`` in {0, 1}.
    """
    import torch

    from histgan.render import geometry, render_y
    from histgan.synthetic import sample_appearance, sample_shape

    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    rng = np.random.default_rng(seed)
    shape = sample_shape(rng)
    rgb = render_y(shape, sample_appearance(rng), size)
    image = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0
    mask = torch.from_numpy(geometry(shape, size).mask.astype(np.float32)).reshape(1, 1, size, size)
    return image.contiguous(), mask


def plot_soft_vs_hard(images: Tensor, bins: int, bandwidth: float | None = None, masks: Tensor | None = None,
                      titles: Sequence[str] | None = None):
    """Soft (eq 3–4) against counting histograms, one row per image: the image, then R, G, B.

    Args:
        images: ``(N, 3, H, W)`` tensor in [-1, 1].
        bins: number of bins ``K``.
        bandwidth: bandwidth ``B``; ``None`` means ``B = L = 2 / K``.
        masks: optional ``(N, 1, H, W)`` foreground weights; background pixels are excluded.
        titles: optional ``N`` row titles.

    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    from histgan.histogram import default_bandwidth, hard_histogram, soft_histogram

    B = default_bandwidth(bins) if bandwidth is None else float(bandwidth)
    soft = soft_histogram(images.detach(), bins, B, masks)
    hard = hard_histogram(images.detach(), bins, masks)
    n = images.shape[0]
    centres = (-1.0 + (np.arange(bins) + 0.5) * 2.0 / bins)
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [0.8, 1, 1, 1]})
    for i in range(n):
        shown = images[i] if masks is None else images[i] * masks[i] + (masks[i] - 1.0) * 0.5
        axes[i, 0].imshow(to_display(shown))
        axes[i, 0].set_axis_off()
        axes[i, 0].set_title(titles[i] if titles else f"image {i}", fontsize=9)
        for c, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
            ax = axes[i, c + 1]
            ax.bar(centres, hard[i, c].numpy(), width=2.0 / bins, color=colour, alpha=0.25, label="hard")
            ax.plot(centres, soft[i, c].numpy(), "-", color=colour, lw=1.5, label="soft")
            ax.set_xlim(-1, 1)
            ax.set_title(f"{'RGB'[c]}: soft mass {float(soft[i, c].sum()):.3f}", fontsize=9)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"K = {bins}, L = {2.0 / bins:.4f}, B = {B:.4f} (= {B * bins / 2.0:.2f} L)", fontsize=10)
    fig.tight_layout()
    return fig


def show_source(obj: object):
    """The source of a package object as a Markdown code block: the book shows code, never retypes it.

    Args:
        obj: a function, class or method defined in a Python file.

    Returns:
        an ``IPython.display.Markdown`` whose first line names the object and where it lives.
    """
    import inspect
    import textwrap
    from pathlib import Path

    from IPython.display import Markdown

    target = inspect.unwrap(obj)
    lines, start = inspect.getsourcelines(target)
    path = Path(inspect.getsourcefile(target) or "?")
    where = "/".join(path.parts[-2:]) if path.parent.name == "histgan" else path.name
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    code = textwrap.dedent("".join(lines)).rstrip("\n")
    header = f"**Source** `{name}` ({where}, lines {start}–{start + len(lines) - 1}):"
    return Markdown(f"{header}\n\n```python\n{code}\n```")


def saved_tensor_bytes(fn, *args, **kwargs) -> int:
    """Bytes of the tensors autograd keeps alive for the backward pass of ``fn(*args, **kwargs)``.

    Counts every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` during the call
    (deterministic, unlike a process's peak memory). At least one argument must require grad.
    """
    import torch

    sizes: list[int] = []

    def pack(t: Tensor) -> Tensor:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, **kwargs)
    return int(sum(sizes))
