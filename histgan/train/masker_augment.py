"""Augmentation for the skin segmenter: new backgrounds, geometry and colour, so it learns skin, not backdrops.

A training batch for :mod:`histgan.train.masker` is made from Y images and their masks by

1. **geometry** — a random horizontal flip, rotation (±``max_rotation`` degrees), scale and shift,
   applied to image and mask together (:func:`random_affine`);
2. **background** — with probability ``1 - keep_background`` the pixels outside the mask are
   replaced by a flat colour, a linear gradient, or a blotchy texture of two random colours with
   pixel noise (:func:`random_backgrounds`), composited as ``m · image + (1 − m) · background``;
3. **colour** — on the whole image: a hue rotation about the grey axis, saturation, brightness and
   contrast scaling, and Gaussian noise (:func:`colour_jitter`).

Every draw comes from the ``torch.Generator`` passed in, so a batch is a function of its seed alone.
Images are ``(N, 3, H, W)`` in [-1, 1]; masks ``(N, 1, H, W)`` in {0, 1}.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor

__all__ = ["random_affine", "random_backgrounds", "colour_jitter", "augment"]


def _uniform(g: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def random_affine(images: Tensor, masks: Tensor, g: torch.Generator, max_rotation: float = 15.0,
                  scale: tuple[float, float] = (0.85, 1.15), shift: float = 0.1) -> tuple[Tensor, Tensor]:
    """Flip, rotate, scale and shift images and masks together; borders repeat the edge pixels.

    The sampling grid maps output coordinates ``p`` to input ``A p + t`` with
    ``A = R(θ) diag(±1/s, 1/s)`` (``s`` the zoom, the sign a horizontal flip), so a knee that leaves
    the frame stays cut where it was cut. The mask is resampled bilinearly and thresholded at ½.
    """
    n = len(images)
    theta = _uniform(g, n, -max_rotation, max_rotation) * math.pi / 180
    inv_s = 1.0 / _uniform(g, n, *scale)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    t = _uniform(g, 2 * n, -shift, shift).reshape(n, 2)
    cos, sin = torch.cos(theta) * inv_s, torch.sin(theta) * inv_s
    A = torch.stack([torch.stack([cos * flip, -sin, t[:, 0]], 1), torch.stack([sin * flip, cos, t[:, 1]], 1)], 1)
    grid = nnf.affine_grid(A, list(images.shape), align_corners=False)
    both = nnf.grid_sample(torch.cat([images, masks], 1), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    return both[:, :3], (both[:, 3:] >= 0.5).float()


def _blotches(g: torch.Generator, n: int, size: int) -> Tensor:
    """``(n, 1, size, size)`` smooth noise in [0, 1]: random grids of 3–12 cells upsampled bicubically."""
    out = []
    for cells in torch.randint(3, 13, (n,), generator=g).tolist():
        coarse = torch.rand(1, 1, cells, cells, generator=g)
        out.append(nnf.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0])
    return torch.stack(out).clamp(0, 1)


def random_backgrounds(n: int, size: int, g: torch.Generator) -> Tensor:
    """``n`` backgrounds ``(n, 3, size, size)`` in [-1, 1]: flat, linear gradient or blotchy texture.

    Each is ``c_1 + (c_2 − c_1) · t(p)`` for two uniform random colours and a pattern ``t``: 0
    (flat), the projection of ``p`` on a random direction (gradient), or smooth noise (texture);
    then Gaussian pixel noise of a random strength (0–0.1) is added.
    """
    c1, c2 = (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1 for _ in range(2))
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=g)
    ax = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    angle = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    ramp = ((xx * torch.cos(angle) + yy * torch.sin(angle)) / (2 * math.sqrt(2)) + 0.5).unsqueeze(1)
    t = torch.where(kind == 0, torch.zeros_like(ramp), torch.where(kind == 1, ramp, _blotches(g, n, size)))
    noise = torch.randn(n, 3, size, size, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 0.2
    return (c1 + (c2 - c1) * t + noise).clamp(-1, 1)


def _hue_rotation(angles: Tensor) -> Tensor:
    """Rotation matrices ``(N, 3, 3)`` about the grey axis ``k = (1, 1, 1)/√3`` (Rodrigues' formula).

    ``R = cos θ · I + sin θ · [k]ₓ + (1 − cos θ) · k kᵀ`` turns the hue of an RGB colour by ``θ`` and
    keeps its grey component.
    """
    k = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    c, s = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    return c * torch.eye(3) + s * cross + (1 - c) * torch.outer(k, k)


def colour_jitter(images: Tensor, g: torch.Generator, hue: float = 0.06, saturation: tuple[float, float] = (0.5, 1.5),
                  brightness: tuple[float, float] = (0.6, 1.4), contrast: tuple[float, float] = (0.7, 1.3),
                  noise: float = 0.03) -> Tensor:
    """Random hue turn (±``hue`` of a full turn), saturation, brightness, contrast and noise per image.

    In [0, 1] units ``u``: ``u ← R_hue u``; ``u ← ū + s (u − ū)`` (``ū`` the per-pixel grey);
    ``u ← b u``; ``u ← m + c (u − m)`` (``m`` the image mean); ``u ← u + σ ε``; clipped to [0, 1].
    """
    n = len(images)
    u = (images + 1) / 2
    u = torch.einsum("nij,njhw->nihw", _hue_rotation(_uniform(g, n, -hue, hue) * 2 * math.pi), u)
    grey = u.mean(1, keepdim=True)
    u = grey + _uniform(g, n, *saturation)[:, None, None, None] * (u - grey)
    u = u * _uniform(g, n, *brightness)[:, None, None, None]
    m = u.mean(dim=(1, 2, 3), keepdim=True)
    u = m + _uniform(g, n, *contrast)[:, None, None, None] * (u - m)
    u = u + torch.randn(u.shape, generator=g) * _uniform(g, n, 0, noise)[:, None, None, None]
    return u.clamp(0, 1) * 2 - 1


def augment(images: Tensor, masks: Tensor, g: torch.Generator, keep_background: float = 0.2) -> tuple[Tensor, Tensor]:
    """Steps 1–3 of the module docstring: ``(N, 3, H, W), (N, 1, H, W) → `` the same, augmented."""
    x, m = random_affine(images, masks, g)
    bg = random_backgrounds(len(x), x.shape[-1], g)
    keep = (torch.rand(len(x), 1, 1, 1, generator=g) < keep_background).float()
    x = keep * x + (1 - keep) * (m * x + (1 - m) * bg)
    return colour_jitter(x, g), m
