"""Reading image and mask files: any Pillow mode to a model-space tensor, every failure a
:class:`~histgan.errors.HistganError` naming the file.

Images are returned in model space: ``(3, H, W)`` float32 in [-1, 1]; masks as ``(1, H, W)`` float32 in
{0, 1} (any non-zero grey value is foreground). Missing or empty folders, zero-byte, corrupt or truncated
files and images over Pillow's decompression-bomb limit are errors that say what to do.
:mod:`histgan.data.folders` reads datasets of such files.
"""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from histgan.errors import HistganError

__all__ = ["IMAGE_EXTENSIONS", "list_images", "to_float", "check_size", "read_image", "load_image", "read_mask",
           "load_mask", "threshold_mask"]

#: File name extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` (by extension), sorted by name; error if none or no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HistganError(f"image folder {folder} does not exist; expected the CycleGAN layout "
                           "root/trainA, root/trainB, root/testA, root/testB")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise HistganError(f"image folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path``, turning every failure into a HistganError naming it."""
    try:
        if path.stat().st_size == 0:
            raise HistganError(f"{path} is an empty (zero-byte) file; delete or replace it")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return ImageOps.exif_transpose(im)
    except HistganError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HistganError(f"{path} is too large to open safely ({exc}); resize it, or raise "
                           "PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from None
    except UnidentifiedImageError:
        raise HistganError(f"{path} is not an image Pillow can read (corrupt or unknown format)") from None
    except FileNotFoundError:
        raise HistganError(f"{path} does not exist") from None
    except _READ_ERRORS as exc:
        raise HistganError(f"{path} is corrupt or truncated ({exc}); re-export or delete it") from None


def to_float(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode → RGB ``(H, W, 3)`` float32 in [0, 1] and alpha ``(H, W)`` in [0, 1] or None.

    16-bit modes (``I;16*``, and ``I`` as Pillow opens 16-bit PNGs) are divided by 65535, float
    ``F`` images are clipped to [0, 1]; everything else goes through Pillow's 8-bit conversion.
    """
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im).astype(np.float32)
        a = a if im.mode == "F" else a / 65535.0
        return np.repeat(np.clip(a, 0.0, 1.0)[..., None], 3, axis=2), None
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    a = np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    return a[..., :3], (a[..., 3] if has_alpha else None)


def _resize(t: Tensor, size: int | None, binary: bool = False) -> Tensor:
    """``(C, H, W)`` → ``(C, size, size)``: bicubic with antialiasing; masks by area then >= 1/2."""
    if size is None or tuple(t.shape[-2:]) == (size, size):
        return t
    if binary:
        return (nnf.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)[0] >= 0.5).float()
    return nnf.interpolate(t[None], size=(size, size), mode="bicubic", antialias=True, align_corners=False)[0]


def check_size(size: int | None) -> None:
    """Raise ValueError unless ``size`` is None or a positive integer."""
    if size is not None and (int(size) != size or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")


def read_image(path: Path, size: int | None) -> tuple[Tensor, Tensor | None, tuple[int, int]]:
    """Image ``(3, H, W)`` in [-1, 1], alpha mask ``(1, H, W)`` or None, original ``(W, H)``."""
    check_size(size)
    im = _open(Path(path))
    rgb, alpha = to_float(im)
    x = _resize(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), size).clamp(0.0, 1.0) * 2.0 - 1.0
    m = None if alpha is None else _resize(torch.from_numpy((alpha >= 0.5).astype(np.float32))[None], size, True)
    return x, m, im.size


def load_image(path: str | os.PathLike, size: int | None = None) -> Tensor:
    """Read an image of any mode as ``(3, H, W)`` float32 in [-1, 1] (``size × size`` if ``size``).

    Grayscale is repeated to RGB, palettes are expanded, alpha is dropped (colour channels kept as
    stored; :class:`histgan.data.folders.UnpairedImageFolder` uses alpha as the mask fallback), 16-bit values keep their
    precision. Raises :class:`~histgan.errors.HistganError` naming the file if it cannot be read.
    """
    return read_image(Path(path), size)[0]


def read_mask(path: Path, size: int | None) -> tuple[Tensor, tuple[int, int]]:
    """Mask ``(1, H, W)`` in {0, 1} (non-zero grey is foreground) and the file's original ``(W, H)``."""
    check_size(size)
    im = _open(Path(path))
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im)
    else:
        a = np.asarray(im.convert("L"))
    m = torch.from_numpy((a > 0).astype(np.float32))[None]
    return _resize(m, size, binary=True), im.size


def load_mask(path: str | os.PathLike, size: int | None = None) -> Tensor:
    """Read a mask file as ``(1, H, W)`` float32 in {0, 1}: any non-zero grey value is foreground."""
    return read_mask(Path(path), size)[0]


def threshold_mask(image: Tensor, tol: float = 0.05) -> Tensor:
    """Foreground by background colour: ``(3, H, W)`` in [-1, 1] → ``(1, H, W)`` in {0, 1}.

    The background colour is the per-channel median of the one-pixel border; a pixel is foreground
    when some channel differs from it by more than ``tol`` (in [0, 1] units, i.e. ``2 tol`` in model
    space). Suits plain backgrounds such as domain X's; not cluttered photographs.
    """
    border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
    bg = border.median(dim=1).values[:, None, None]
    return ((image - bg).abs().amax(dim=0, keepdim=True) > 2.0 * tol).float()
