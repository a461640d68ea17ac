"""Which pixels of a reference give the colour code: alpha, a mask file, the masker's prediction, or all.

The paper takes the reference histogram over the **foreground** only (background pixels
excluded). A reference's mask is chosen by ``reference_mask``:

* ``"auto"`` (the default of ``translate`` and ``evaluate``): the image's alpha channel if it has
  one (alpha ≥ 128 is foreground); else its mask file by the dataset layout (``DIR_mask/NAME`` next
  to ``DIR/NAME``); else the prediction of a :class:`~histgan.train.masker.Masker` — an explicit one, or
  the translator run's own in ``RUN/masker/``. If none is found that is an error saying how to
  train one: never a silent fall-back to the whole image, which would change the colours.
* ``"none"``: the whole image (the behaviour before the masker existed).
* a mask: a tensor, a PIL image, or the path of a mask file (non-zero = foreground).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from histgan.errors import HistganError
from histgan.train.masker import MASKER_DIRNAME, TRAIN_HINT, Masker, load_masker, predict_mask

__all__ = ["REFERENCE_MASK_MODES", "as_mask", "sibling_mask", "find_masker", "resolve_reference_mask",
           "masked_reference_root", "load_reference", "load_masked_reference"]

#: The named choices of ``reference_mask`` (anything else is a mask or a path to one).
REFERENCE_MASK_MODES = ("auto", "none")


def as_mask(mask: Any) -> Tensor:
    """A tensor or PIL image → ``(N, 1, H, W)`` float in {0, 1} (values > ½ are foreground)."""
    if isinstance(mask, Tensor):
        m = mask.float()
    elif hasattr(mask, "convert"):
        m = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255.0)
    else:
        raise HistganError(f"reference_mask must be 'auto', 'none', a tensor, a PIL image or a path, "
                           f"got {type(mask).__name__}")
    while m.dim() < 4:
        m = m.unsqueeze(0)
    return (m > 0.5).float()


def sibling_mask(image_path: str | os.PathLike) -> Path | None:
    """The mask file of ``DIR/NAME`` by the dataset layout, ``DIR_mask/NAME`` (any image extension), or None."""
    from histgan.data.folders import find_mask

    path = Path(image_path)
    mask_dir = path.parent.with_name(path.parent.name + "_mask")
    if not mask_dir.is_dir():
        return None
    try:
        return find_mask(mask_dir, path)
    except HistganError:
        return None


def find_masker(masker: Masker | str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
                device: str | torch.device = "cpu") -> Masker:
    """``masker`` itself, or loaded from its path, or the one in ``run_dir/masker/``.

    Raises:
        HistganError: neither exists; the message names ``--masker``, ``--reference-mask none`` and
            the command that trains a masker.
    """
    if isinstance(masker, Masker):
        return masker
    if masker is not None:
        return load_masker(masker, device)
    default = Path(run_dir) / MASKER_DIRNAME if run_dir is not None else None
    if default is not None and default.is_dir():
        return load_masker(default, device)
    where = f"none in {default}" if default is not None else "no run folder to look in"
    raise HistganError(f"--reference-mask auto: the reference has no alpha channel or mask file, and no masker "
                       f"was found ({where}); pass --masker PATH, train one with '{TRAIN_HINT}', or take the "
                       "whole image with --reference-mask none")


def resolve_reference_mask(reference_mask: Any, ref: Tensor, alpha: Tensor | None = None,
                           path: str | os.PathLike | None = None, masker: Masker | str | os.PathLike | None = None,
                           run_dir: str | os.PathLike | None = None) -> Tensor | None:
    """The mask ``(N, 1, H, W)`` of references ``ref (N, 3, H, W)`` by the rules of the module docstring.

    Args:
        reference_mask: ``"auto"``, ``"none"`` (or None), a mask tensor / PIL image, or a mask file path.
        ref: the references in [-1, 1], at the size the mask must have.
        alpha: the references' alpha masks, if their files had alpha.
        path: the reference's file, where ``"auto"`` looks for ``DIR_mask/NAME``.
        masker, run_dir: where ``"auto"`` finds a masker (:func:`find_masker`).

    Returns:
        the mask, or None for the whole image.

    Raises:
        HistganError: a bad ``reference_mask`` (naming it), or ``"auto"`` with nothing to go on.
    """
    from histgan.data.image_files import load_mask

    size = tuple(ref.shape[-2:])
    if reference_mask is None or (isinstance(reference_mask, str) and reference_mask == "none"):
        return None
    if isinstance(reference_mask, str) and reference_mask == "auto":
        if alpha is not None:
            return alpha
        found = sibling_mask(path) if path is not None else None
        if found is not None:
            return _fit(load_mask(found).unsqueeze(0), size)
        return predict_mask(find_masker(masker, run_dir, ref.device), ref)
    if isinstance(reference_mask, (str, os.PathLike)):
        if not Path(reference_mask).is_file():
            raise HistganError(f"reference_mask {str(reference_mask)!r} is neither 'auto', 'none' nor a mask file")
        return _fit(load_mask(reference_mask).unsqueeze(0), size)
    return _fit(as_mask(reference_mask), size)


def _fit(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A mask at ``size`` (by area, then ≥ ½, as :mod:`histgan.data.image_files` resizes masks)."""
    if tuple(mask.shape[-2:]) == size:
        return mask
    return (torch.nn.functional.interpolate(mask, size=size, mode="bilinear", antialias=True,
                                            align_corners=False) >= 0.5).float()


def masked_reference_root(data: str | os.PathLike, out_dir: str | os.PathLike, reference_mask: str = "auto",
                          masker: Masker | str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
                          folder: str = "testB") -> Path:
    """A dataset root whose ``folder`` references have masks, for :func:`histgan.eval.trained_runs.evaluate_runs`.

    ``"none"`` (and ``"auto"`` when ``data/{folder}_mask/`` exists or every reference has alpha) returns
    ``data`` unchanged. Otherwise the masks — alpha where present, else the masker's prediction
    (``"auto"``), or the files of the folder ``reference_mask`` (named like the references) — are
    used as ``{folder}_mask``: predicted ones are written to ``out_dir/reference_masks/`` for
    inspection, and ``out_dir/.data/`` links ``data``'s folders and files next to them.
    """
    from histgan.data.image_files import list_images, read_image
    from histgan.io import atomic_save_png

    data, out_dir = Path(data), Path(out_dir)
    if reference_mask == "none" or (reference_mask == "auto" and (data / f"{folder}_mask").is_dir()):
        return data
    if reference_mask == "auto":
        files = list_images(data / folder)
        alphas = [read_image(p, None)[1] for p in files]
        if all(a is not None for a in alphas):
            return data
        net = find_masker(masker, run_dir)
        masks_dir = out_dir / "reference_masks"
        for p, a in zip(files, alphas):
            m = a if a is not None else predict_mask(net, read_image(p, None)[0].unsqueeze(0))[0]
            atomic_save_png(masks_dir / f"{p.stem}.png", (m[0].numpy() * 255).astype(np.uint8))
    else:
        masks_dir = Path(reference_mask)
        if not masks_dir.is_dir():
            raise HistganError(f"--reference-mask {reference_mask!r} is neither auto, none nor a folder of masks")
    view = out_dir / ".data"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for item in data.iterdir():
        if item.name != f"{folder}_mask" and not item.name.startswith("."):
            _link(item.resolve(), view / item.name)
    _link(masks_dir.resolve(), view / f"{folder}_mask")
    return view


def _link(target: Path, where: Path) -> None:
    try:
        where.symlink_to(target, target_is_directory=target.is_dir())
    except OSError:  # no symlinks here (some Windows set-ups): copy
        (shutil.copytree if target.is_dir() else shutil.copy2)(target, where)


def load_reference(path: str | os.PathLike, size: int | None = None) -> tuple[Tensor, Tensor | None, tuple[int, int]]:
    """A reference file → image ``(1, 3, S, S)`` in [-1, 1], alpha mask ``(1, 1, S, S)`` or None, native ``(H, W)``."""
    from histgan.data.image_files import read_image

    image, alpha, (w, h) = read_image(Path(path), size)
    return image.unsqueeze(0), None if alpha is None else alpha.unsqueeze(0), (h, w)


def load_masked_reference(path: str | os.PathLike, size: int | None = None, reference_mask: Any = "auto",
                          masker: Masker | str | os.PathLike | None = None,
                          run_dir: str | os.PathLike | None = None) -> tuple[Tensor, Tensor | None]:
    """A reference file and its mask: image ``(1, 3, S, S)`` in [-1, 1] and mask ``(1, 1, S, S)`` or None.

    The mask is chosen by :func:`resolve_reference_mask` (``"auto"`` looks at the file's alpha, then
    ``DIR_mask/NAME``, then ``masker`` or ``run_dir/masker/``).

    Raises:
        HistganError: ``reference_mask`` is a mask file whose size differs from the reference's (naming
            both), or as :func:`resolve_reference_mask`.
    """
    from histgan.data.image_files import load_mask

    ref, alpha, native = load_reference(path, size)
    if (isinstance(reference_mask, (str, os.PathLike)) and reference_mask not in REFERENCE_MASK_MODES
            and Path(reference_mask).is_file()):
        mh, mw = load_mask(reference_mask).shape[-2:]
        if (mh, mw) != native:
            raise HistganError(f"reference mask {reference_mask} is {mw}x{mh} but the reference {path} is "
                               f"{native[1]}x{native[0]}; they must match (give the mask of this reference, "
                               "or 'auto' or 'none')")
    return ref, resolve_reference_mask(reference_mask, ref, alpha, path, masker, run_dir)
