"""A GAN's latent space: interpolation, inversion, set means, arithmetic, and morphs measured against truth.

The painting-generation study of Yabumoto, Shoji & Tanaka morphs between a *start set* and an *end
set* of images (a painter's early and late works): find the latents of both sets, interpolate between
them, and read the frames as the images "in between". The DCGAN paper (Radford, Metz & Chintala) adds
vector arithmetic on set means (smiling woman − neutral woman + neutral man → smiling man). Here the
generator is :class:`histgan.train.dcgan.Generator` trained on the benchmark's knees, and — unlike paintings
— the benchmark renders the true image at any skin tone between two others
(:func:`histgan.data.intermediate.between`), so a morph's frames can be *measured*.

* **Interpolation** (:func:`lerp`, :func:`slerp`): for ``z ~ N(0, I)`` in many dimensions the norm
  concentrates near ``√nz``; the straight line between two latents passes closer to the origin, where
  the generator saw few inputs. Spherical interpolation (Shoemake) follows the great circle:
  ``slerp(z₀, z₁; t) = sin((1−t)ω)/sin ω · z₀ + sin(tω)/sin ω · z₁`` with ``cos ω = ẑ₀·ẑ₁``.
* **Inversion** (:func:`invert`): ``z* = argmin_z ‖G(z) − y‖² / P + λ_f ‖φ(G(z)) − φ(y)‖² / Q`` by
  Adam from several random starts (``φ`` = the discriminator's last hidden maps, P and Q the numbers of
  pixel and feature values), keeping the best start per image.
* **Foreground** of a generated knee: it has no mask, so its colour is read in the central square
  (:func:`centre_mask`): the benchmark's knees are centred, and the square is mostly skin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from histgan.errors import HistganError

__all__ = ["lerp", "slerp", "nnz", "interpolate", "Inversion", "invert", "set_latent", "centre_mask", "centre_lab",
           "centre_floor", "pick", "corner", "true_between_lab", "morph_delta_e"]


def lerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """``(1 − t) z₀ + t z₁`` for latents ``(..., nz)``."""
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor, eps: float = 1e-6) -> Tensor:
    """Spherical interpolation (module docstring) of latents ``(..., nz)``; ``t = 0`` gives ``z₀``, ``t = 1``
    ``z₁``. Unit vectors stay unit vectors; nearly parallel latents (``sin ω < eps``) fall back to :func:`lerp`.
    """
    cos = (nnz(z0) * nnz(z1)).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=z0.dtype)
    out = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin.clamp_min(eps)
    return torch.where(sin < eps, lerp(z0, z1, t), out)


def nnz(z: Tensor) -> Tensor:
    """``z / ‖z‖`` along the last dimension."""
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def interpolate(z0: Tensor, z1: Tensor, ts: Sequence[float], mode: str = "slerp") -> Tensor:
    """Frames between two latents ``(nz,)``: ``(T, nz)`` at ``ts`` by ``mode`` ``"lerp"`` or ``"slerp"``."""
    if mode not in ("lerp", "slerp"):
        raise HistganError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    f = slerp if mode == "slerp" else lerp
    return torch.stack([f(z0, z1, float(t)) for t in ts])


@dataclass
class Inversion:
    """What :func:`invert` found for ``N`` target images with ``R`` restarts over ``steps`` steps."""

    z: Tensor  # (N, nz) the best restart's latent per image
    images: Tensor  # (N, 3, S, S) G(z)
    error: Tensor  # (N,) mean squared pixel error of G(z) against the target (values in [-1, 1])
    curve: Tensor  # (steps, R, N) mean squared pixel error of every restart along the steps
    best: Tensor  # (N,) index of the restart kept


def invert(G: torch.nn.Module, D: torch.nn.Module | None, targets: Tensor, steps: int = 200, restarts: int = 3,
           lr: float = 0.05, feature_weight: float = 0.1, seed: int = 0) -> Inversion:
    """Latents whose images reproduce ``targets`` ``(N, 3, S, S)`` in [-1, 1] (module docstring).

    Args:
        G: the generator (used in eval mode, its weights frozen).
        D: the discriminator whose :meth:`features` give the feature term; ``None`` or
            ``feature_weight = 0``: pixels only.
        steps, restarts, lr: Adam steps, random starts per image, Adam's learning rate.
        feature_weight: λ_f, the weight of the feature term.
        seed: draws the starting latents.

    Raises:
        HistganError: targets of the wrong shape or non-positive ``steps``/``restarts``.
    """
    G.eval().requires_grad_(False)
    with torch.no_grad():
        S = G(torch.zeros(1, G.nz, device=_device(G))).shape[-1]
    if targets.dim() != 4 or tuple(targets.shape[1:]) != (3, S, S):
        raise HistganError(f"targets must be (N, 3, {S}, {S}) images for this generator, got {tuple(targets.shape)}")
    if steps < 1 or restarts < 1:
        raise HistganError(f"steps and restarts must be >= 1, got {steps} and {restarts}")
    use_d = D is not None and feature_weight > 0
    if use_d:
        D.eval().requires_grad_(False)
    n, dev = len(targets), _device(G)
    y = targets.to(dev).repeat(restarts, 1, 1, 1)  # (R·N, 3, S, S), restart-major
    phi_y = D.features(y) if use_d else None
    z = torch.randn(restarts * n, G.nz, generator=torch.Generator().manual_seed(seed)).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    curve = []
    for _ in range(steps):
        x = G(z)
        pixel = ((x - y) ** 2).flatten(1).mean(1)
        loss = pixel + (feature_weight * ((D.features(x) - phi_y) ** 2).flatten(1).mean(1) if use_d else 0)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        curve.append(pixel.detach().cpu().view(restarts, n))
    with torch.no_grad():
        x = G(z)
        final = ((x - y) ** 2).flatten(1).mean(1).cpu().view(restarts, n)
        best = final.argmin(0)
        keep = best * n + torch.arange(n)
        return Inversion(z=z.detach().cpu()[keep], images=x.cpu()[keep], error=final[best, torch.arange(n)],
                         curve=torch.stack(curve), best=best)


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def centre_mask(size: int, fraction: float = 0.35) -> Tensor:
    """``(1, 1, size, size)``: 1 in the central square of side ``fraction · size``, else 0 — the
    foreground estimate of an unmasked generated knee (module docstring).

    The default side 0.35 S balances two errors: a larger square takes in background, a smaller one sees
    only the joint. :func:`centre_floor` measures what reading colour this way costs on real knees.
    """
    if not 0 < fraction <= 1:
        raise HistganError(f"fraction must lie in (0, 1], got {fraction}")
    side = max(1, round(fraction * size))
    lo = (size - side) // 2
    m = torch.zeros(1, 1, size, size)
    m[..., lo:lo + side, lo:lo + side] = 1.0
    return m


def pick(root: str | os.PathLike, folder: str = "trainB", tone: tuple[float, float] = (0, 10),
         bend: tuple[float, float] = (0, 180), n: int | None = None, order: str = "tone") -> list[str]:
    """Names of the images of ``root/folder`` whose Monk tone and knee flexion ``|bend|`` (degrees) lie in
    the closed ranges, from ``meta.json``; sorted by ``order`` (``"tone"`` or ``"-tone"``: darkest
    first), at most ``n``.

    Raises:
        HistganError: no image matches (the message gives the ranges to widen).
    """
    from histgan.data.synthetic import load_meta

    entries = load_meta(root)["images"][folder]
    rows = [(e["appearance"]["tone"], name) for name, e in entries.items()
            if tone[0] <= e["appearance"]["tone"] <= tone[1] and bend[0] <= abs(e["shape"]["bend"]) <= bend[1]]
    if not rows:
        raise HistganError(f"no image of {Path(root) / folder} has tone in {tone} and |bend| in {bend}; widen them")
    rows.sort(reverse=order == "-tone")
    return [name for _, name in rows[:n]]


def corner(root: str | os.PathLike, folder: str = "trainB", dark: bool = True, bent: bool = True,
           n: int = 6) -> list[str]:
    """The ``n`` images of ``root/folder`` nearest a corner of the (Monk tone, ``|bend|``) plane: those with
    the largest sum of their rank by tone (darkest first when ``dark``) and by flexion (most bent first
    when ``bent``), from ``meta.json``. Never empty, unlike fixed ranges on a small set."""
    from histgan.data.synthetic import load_meta

    entries = load_meta(root)["images"][folder]
    names = sorted(entries)
    tone = np.array([entries[k]["appearance"]["tone"] for k in names]) * (1 if dark else -1)
    flex = np.array([abs(entries[k]["shape"]["bend"]) for k in names]) * (1 if bent else -1)
    score = tone.argsort().argsort() + flex.argsort().argsort()
    return [names[i] for i in np.argsort(-score, kind="stable")[:n]]


def true_between_lab(root: str | os.PathLike, folder: str, names_a: Sequence[str], names_b: Sequence[str],
                     ts: Sequence[float]) -> np.ndarray:
    """Mean foreground L*a*b* of the true images between two sets, ``(T, 3)``.

    Image ``i`` of the start set rendered with its skin moved a fraction ``t`` of the way to image ``i``
    of the end set's (:func:`histgan.data.intermediate.between`; shape, background and camera stay
    ``a_i``'s), averaged over its true mask and then over the pairs.
    """
    from histgan.data.image_files import load_mask
    from histgan.data.intermediate import between
    from histgan.colour_difference import mean_lab
    from histgan.data.render import KneeShape
    from histgan.data.synthetic import RENDER_Y, appearance_from_meta, image_entry

    if len(names_a) != len(names_b) or not names_a:
        raise HistganError(f"names_a and names_b must pair up, got {len(names_a)} and {len(names_b)} names")
    out = []
    for t in ts:
        labs = []
        for a, b in zip(names_a, names_b):
            meta, ea = image_entry(root, folder, a)
            domain = meta.get("domain", "plain")
            ends = (ea, image_entry(root, folder, b)[1])
            app = between(*(appearance_from_meta(e["appearance"], domain) for e in ends), float(t))
            img = RENDER_Y[domain](KneeShape(**ea["shape"]), app, meta["size"])
            mask = load_mask(Path(root) / f"{folder}_mask" / a)
            labs.append(mean_lab(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0, mask[None],
                                 value_range=(0, 1))[0])
        out.append(np.mean(labs, 0))
    return np.asarray(out)


def centre_lab(images: Tensor, fraction: float = 0.35) -> np.ndarray:
    """Mean L*a*b* of each image's central square (:func:`centre_mask`): ``(N, 3, S, S)`` in [-1, 1] → ``(N, 3)``."""
    from histgan.colour_difference import mean_lab

    return mean_lab(images, centre_mask(images.shape[-1], fraction).expand(len(images), -1, -1, -1))


def centre_floor(images: Tensor, masks: Tensor, fraction: float = 0.35) -> dict[str, float]:
    """What reading a knee's colour in the central square costs, measured on real knees with true masks.

    Args:
        images: ``(N, 3, S, S)`` in [-1, 1]; masks: ``(N, 1, S, S)`` in {0, 1}.

    Returns:
        ``skin`` / ``skin_min``: the mean / smallest share of the square that is foreground;
        ``delta_e`` / ``delta_e_median``: mean / median ΔE (eq 12) between the square's mean colour and
        the whole foreground's — the floor of any ΔE read from the square (:func:`morph_delta_e`).
    """
    from histgan.colour_difference import delta_e_lab, mean_lab

    square = centre_mask(images.shape[-1], fraction)
    share = (masks * square).flatten(1).sum(1) / square.sum()
    de = delta_e_lab(centre_lab(images, fraction), mean_lab(images, masks))
    return {"skin": float(share.mean()), "skin_min": float(share.min()), "delta_e": float(np.mean(de)),
            "delta_e_median": float(np.median(de))}


def morph_delta_e(frames: Tensor, truth_lab: np.ndarray, fraction: float = 0.35) -> np.ndarray:
    """ΔE (eq 12) of each frame's central-square mean colour (:func:`centre_lab`) to the true colour
    at its ``t``: frames ``(T, 3, S, S)`` in [-1, 1], ``truth_lab`` ``(T, 3)`` → ``(T,)``."""
    from histgan.colour_difference import delta_e_lab

    return delta_e_lab(centre_lab(frames, fraction), truth_lab)


def set_latent(G: torch.nn.Module, D: torch.nn.Module | None, images: Tensor, keep_norm: bool = True,
               **options) -> tuple[Tensor, Inversion]:
    """The mean latent of a set of images ``(N, 3, S, S)`` — each inverted (:func:`invert`, ``options``
    passed on) — and the inversion: ``((nz,), Inversion)``.

    The mean of ``N`` latents pointing different ways is shorter than any of them (about ``1/√N`` of
    their norm when they are independent), and a generator draws a short latent as a dim, average image.
    ``keep_norm`` keeps the mean's direction and gives it the mean norm of the set's latents (measured
    on the book's DCGAN: the plain mean of the six lightest knees' latents draws L* 50 where their
    reconstructions have L* 84; the rescaled mean draws L* 91).
    """
    found = invert(G, D, images, **options)
    z = found.z.mean(0)
    return (nnz(z) * found.z.norm(dim=1).mean() if keep_norm else z), found
