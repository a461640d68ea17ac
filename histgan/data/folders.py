"""Loading unpaired image folders (the CycleGAN layout) with foreground masks.

Layout: ``root/{phase}A/`` (domain X) and ``root/{phase}B/`` (domain Y), optionally with
``root/{phase}A_mask/`` … holding a mask per image under the same file name (any extension; non-zero
= foreground). Images are returned in model space: ``(3, H, W)`` float32 in [-1, 1]; masks as
``(1, H, W)`` float32 in {0, 1}.

Masks, in order of preference (``masks="auto"``): the ``*_mask`` folder; else the image's alpha
channel (alpha >= 128 is foreground); else all ones. ``masks="ones"`` always uses all ones and
``masks="threshold"`` uses :func:`~histgan.data.image_files.threshold_mask` (distance from the border's
median colour).

Files are read by :mod:`histgan.data.image_files`. Every failure to read a file — missing or empty
folder, zero-byte, corrupt or truncated file, an image over Pillow's decompression-bomb limit, a mask
whose size differs from its image — raises :class:`~histgan.errors.HistganError` naming the file. With
``skip_bad=True``, :class:`UnpairedImageFolder` instead checks every file when it is built, warns about
each bad one, drops it, and ends with one warning counting them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from histgan.data.image_files import IMAGE_EXTENSIONS, check_size, list_images, read_image, read_mask, threshold_mask
from histgan.errors import HistganError

__all__ = ["find_mask", "load_item", "mask_folder", "recolour", "load_domain", "UnpairedImageFolder"]

_MASK_MODES = ("auto", "ones", "threshold")


def find_mask(mask_dir: Path, image: Path) -> Path:
    """The file of ``mask_dir`` with the image's name, or its stem with any image extension."""
    if (mask_dir / image.name).is_file():
        return mask_dir / image.name
    for ext in IMAGE_EXTENSIONS:
        for cand in (mask_dir / (image.stem + ext), mask_dir / (image.stem + ext.upper())):
            if cand.is_file():
                return cand
    raise HistganError(f"no mask for {image} in {mask_dir} (expected {mask_dir / image.name}); add it, "
                       "or remove the mask folder to fall back to alpha / all-ones masks")


def load_item(path: Path, mask_dir: Path | None, size: int | None, masks: str) -> tuple[Tensor, Tensor]:
    """One image and its mask by the rules of the module docstring."""
    x, alpha, wh = read_image(path, size)
    if masks == "threshold":
        return x, threshold_mask(x)
    if masks == "auto" and mask_dir is not None:
        mask_path = find_mask(mask_dir, path)
        m, mwh = read_mask(mask_path, size)
        if mwh != wh:
            raise HistganError(f"mask {mask_path} is {mwh[0]}x{mwh[1]} but its image {path} is "
                               f"{wh[0]}x{wh[1]}; masks must match their images' size")
        return x, m
    if masks == "auto" and alpha is not None:
        return x, alpha
    return x, torch.ones_like(x[:1])


def mask_folder(root: Path, folder: str, masks: str) -> Path | None:
    """``root/{folder}_mask`` when ``masks`` is ``"auto"`` and that folder exists, else None."""
    d = root / f"{folder}_mask"
    return d if masks == "auto" and d.is_dir() else None


def load_domain(root: str | os.PathLike, folder: str, size: int | None = None) -> tuple[Tensor, Tensor, list[str]]:
    """All images of ``root/folder`` with their masks (``masks="auto"``) and sorted file names.

    Args:
        root: dataset root.
        folder: e.g. ``"testA"``; masks come from ``root/{folder}_mask`` (else alpha, else ones).
        size: resize to ``size × size`` (needed when the images differ in size).

    Returns:
        images ``(N, 3, H, W)`` in [-1, 1], masks ``(N, 1, H, W)`` in {0, 1}, names (length N).
    """
    root = Path(root)
    files = list_images(root / folder)
    mask_dir = mask_folder(root, folder, "auto")
    items = [load_item(p, mask_dir, size, "auto") for p in files]
    shapes = {tuple(x.shape) for x, _ in items}
    if len(shapes) > 1:
        raise HistganError(f"images in {root / folder} differ in size {sorted(shapes)}; pass size=")
    return torch.stack([x for x, _ in items]), torch.stack([m for _, m in items]), [p.name for p in files]


#: RGB → (Y, Cb, Cr) of ITU-R BT.601 on gamma-encoded values in [0, 1]; Cb, Cr are the chroma plane.
_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.299 / 1.772, -0.587 / 1.772, 0.5],
                       [0.5, -0.587 / 1.402, -0.114 / 1.402]], dtype=torch.float64)


def recolour(image: Tensor, mask: Tensor, hue_degrees: float, chroma: float) -> Tensor:
    """``image``'s foreground with its hue turned and its chroma scaled (colour augmentation).

    In the (Cb, Cr) chroma plane of BT.601 YCbCr (luma Y unchanged) every foreground pixel's chroma
    is rotated by ``hue_degrees`` and multiplied by ``chroma``; the background (``mask`` 0) is kept and a
    soft mask blends. Values are clipped to [-1, 1].

    Args:
        image: ``(3, H, W)`` in [-1, 1]; mask: ``(1, H, W)`` in [0, 1].

    Returns:
        ``(3, H, W)`` in [-1, 1]; equal to ``image`` for ``hue_degrees = 0, chroma = 1`` up to rounding.
    """
    a = np.deg2rad(hue_degrees)
    turn = torch.tensor([[1.0, 0.0, 0.0], [0.0, np.cos(a) * chroma, -np.sin(a) * chroma],
                         [0.0, np.sin(a) * chroma, np.cos(a) * chroma]], dtype=torch.float64)
    m = torch.linalg.solve(_YCBCR, turn @ _YCBCR).to(image.dtype)  # RGB → YCbCr → turn → RGB, one matrix
    v = (image + 1) / 2
    turned = (torch.einsum("ij,jhw->ihw", m, v) * 2 - 1).clamp(-1, 1)
    return image + mask * (turned - image)


class UnpairedImageFolder(Dataset):
    """Unaligned X/Y pairs from ``root/{phase}A`` and ``root/{phase}B`` (CycleGAN's sampling).

    Item ``i`` pairs X image ``i mod |A|`` with Y image ``perm_e[i mod |B|]``, where ``perm_e`` is
    a permutation of B drawn from ``(seed, epoch)``: the length is ``max(|A|, |B|)``, every pairing
    is reproducible, and :meth:`set_epoch` changes it from epoch to epoch (so resumed training sees
    the same pairs). Horizontal flips (``flip=True``) are drawn from ``(seed, epoch, i)``, and so are
    the Y image's colour augmentation (:func:`recolour`: a hue turn uniform in ``±recolour_hue``
    degrees, a chroma factor log-uniform in ``[1/recolour_chroma, recolour_chroma]``; off by default).

    Items: ``{"x": (3, H, W), "y": (3, H, W), "x_mask": (1, H, W), "y_mask": (1, H, W),
    "x_name": str, "y_name": str}``, and ``"y_idt"`` (``y`` recoloured by another draw of
    :func:`recolour` within ``±identity_hue`` degrees and ``[1/identity_chroma, identity_chroma]``)
    when that is on: the input of the colour-restoring identity term (:mod:`histgan.train.step`).

    Args:
        root: dataset root.
        phase: ``"train"`` or ``"test"`` (any folder prefix works).
        size: resize every image and mask to ``size × size`` (None keeps the files' size).
        masks: ``"auto"``, ``"ones"`` or ``"threshold"`` (module docstring).
        flip: random horizontal flips (of an image with its mask).
        seed: seed of the pairing, the flips and the recolouring.
        recolour_hue, recolour_chroma: the Y images' colour augmentation (0 and 1: none).
        identity_hue, identity_chroma: the recolouring of ``"y_idt"`` (0 and 1: no ``"y_idt"``).
        skip_bad: check every file now and drop bad ones with a warning each (and one counting
            them) instead of raising :class:`~histgan.errors.HistganError`.
    """

    def __init__(self, root: str | os.PathLike, phase: str = "train", size: int | None = None,
                 masks: str = "auto", flip: bool = False, seed: int = 0, skip_bad: bool = False,
                 recolour_hue: float = 0.0, recolour_chroma: float = 1.0, identity_hue: float = 0.0,
                 identity_chroma: float = 1.0) -> None:
        if masks not in _MASK_MODES:
            raise ValueError(f"masks must be one of {_MASK_MODES}, got {masks!r}")
        check_size(size)
        self.root, self.phase, self.size, self.masks = Path(root), phase, size, masks
        self.flip, self.seed, self.skip_bad, self.epoch = flip, int(seed), skip_bad, 0
        self.recolour_hue, self.recolour_chroma = float(recolour_hue), float(recolour_chroma)
        self.identity_hue, self.identity_chroma = float(identity_hue), float(identity_chroma)
        self.mask_dirs = {d: mask_folder(self.root, f"{phase}{d}", masks) for d in "AB"}
        self.files = {d: list_images(self.root / f"{phase}{d}") for d in "AB"}
        self.skipped: list[str] = []
        if skip_bad:
            self._drop_bad()
        self._perm: tuple[int, np.ndarray] | None = None

    def _drop_bad(self) -> None:
        total = sum(len(f) for f in self.files.values())
        for d in "AB":
            good = []
            for p in self.files[d]:
                try:
                    load_item(p, self.mask_dirs[d], self.size, self.masks)
                    good.append(p)
                except HistganError as exc:
                    warnings.warn(f"skipping bad input: {exc}", stacklevel=3)
                    self.skipped.append(str(p))
            if not good:
                raise HistganError(f"no readable images left in {self.root / f'{self.phase}{d}'}")
            self.files[d] = good
        if self.skipped:
            warnings.warn(f"skipped {len(self.skipped)} bad file(s) of {total} in {self.root}", stacklevel=3)

    def __len__(self) -> int:
        return max(len(self.files["A"]), len(self.files["B"]))

    def set_epoch(self, epoch: int) -> None:
        """Choose the pairing and flips of ``epoch`` (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    def pair(self, index: int) -> tuple[int, int]:
        """Indices ``(a, b)`` into the sorted A and B files paired at ``index`` in this epoch."""
        n_a, n_b = len(self.files["A"]), len(self.files["B"])
        if self._perm is None or self._perm[0] != self.epoch:
            self._perm = (self.epoch, np.random.default_rng([self.seed, self.epoch]).permutation(n_b))
        return index % n_a, int(self._perm[1][index % n_b])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        a, b = self.pair(index)
        flips = np.random.default_rng([self.seed, self.epoch, index]).random(2) < 0.5 if self.flip else (False, False)
        item = {}
        for d, key, k, fl in (("A", "x", a, flips[0]), ("B", "y", b, flips[1])):
            path = self.files[d][k]
            img, mask = load_item(path, self.mask_dirs[d], self.size, self.masks)
            if fl:
                img, mask = img.flip(-1), mask.flip(-1)
            item[key], item[f"{key}_mask"], item[f"{key}_name"] = img, mask, path.name
        if self.recolour_hue > 0 or self.recolour_chroma > 1:
            u = np.random.default_rng([self.seed, self.epoch, index, 1]).uniform(-1, 1, 2)
            item["y"] = recolour(item["y"], item["y_mask"], self.recolour_hue * u[0], self.recolour_chroma ** u[1])
        if self.identity_hue > 0 or self.identity_chroma > 1:
            u = np.random.default_rng([self.seed, self.epoch, index, 2]).uniform(-1, 1, 2)
            item["y_idt"] = recolour(item["y"], item["y_mask"], self.identity_hue * u[0], self.identity_chroma ** u[1])
        return item
