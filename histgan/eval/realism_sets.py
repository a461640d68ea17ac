"""The image sets realism is measured on, and the calibration rows that frame its numbers.

:mod:`histgan.eval.realism` compares two sets of images. In the evaluation every set has ``n`` images
(balanced classes for the two-sample test, equal patch counts for SWD):

* **generated** — the outputs of ``n`` input × reference pairs, a seeded draw from the evaluated
  pairs (every model is scored on the same pairs). Outputs repeat the skin and background of the
  few test references (and the shapes of the few test inputs), real images never repeat: a
  classifier can partly score by recognising a reference seen in training, and SWD sees less
  variety. The ground-truth row (synthetic data) measures how much that costs a perfect
  translator; on other data, compare models with each other and with the floor.
* **real reference** — held-out real Y images: the test references (``testB``) first; when they
  are fewer than ``n``, topped up with a seeded draw from ``trainB``. The top-up is the one place
  training images enter the evaluation: ``testB`` alone (the paper's 28) would give sets of 14
  (the floor needs a disjoint half), 7 test images per class, and a two-sample accuracy whose
  standard deviation on indistinguishable sets is about 0.5 / √14 ≈ 0.13. A model that learned
  ``trainB``'s appearances by heart could look a little more real against it; outputs are still
  new images (each is drawn on a test input's shape).
* **floor** (calibration, "real vs real") — ``n`` further real Y images, disjoint from the
  reference (the rest of ``testB``, then ``trainB``), scored against the reference like a model:
  what a perfect generator of *new* images would get at this set size.
* **ceiling** (calibration) — ``n`` X images (``testA``, topped up from ``trainA``), untranslated:
  what no translation at all gets.
* **ground truth** (calibration, synthetic data only) — the true targets of the same ``n`` pairs:
  what a perfect *translator* gets. Its outputs reuse the test references' skin and backgrounds,
  so this row can sit above the floor; compare models with it.

Each is scored twice: on whole images, and foreground only, where every image's background —
generated and real alike — is replaced by one shared grey (:func:`histgan.eval.realism.fill_background`
with each image's own mask: the input's mask for outputs and ground truth, the image's mask for
real and X images). ``n`` is ``min(max_images, pairs, |Y pool| // 2, |X pool|)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from histgan.errors import HistganError
from histgan.metrics import stripe_energy
from histgan.eval.realism import SwdReference, c2st_accuracy, fill_background
from histgan.eval.results import EvalData

__all__ = ["REALISM_METRICS", "MAX_IMAGES", "MIN_IMAGES", "BACKGROUND_FILL", "RealismReference",
           "realism_size", "build_reference", "score", "calibration"]

#: Set-level realism columns, in report order.
REALISM_METRICS = ("swd_whole", "swd_fg", "c2st_whole", "c2st_fg", "stripes")
#: Images per set at most (cost: SWD grows linearly with it; the classifier trains a fixed number of steps).
MAX_IMAGES = 128
#: ``realism="auto"`` skips realism when a set would hold fewer images than this.
MIN_IMAGES = 32
#: The shared background of the foreground-only scores (model space: mid grey).
BACKGROUND_FILL = 0.0


@dataclass
class RealismReference:
    """The real reference set, its precomputed SWD projections, the pairs scored, the calibration sets."""

    n: int  # images per set
    pairs: list[tuple[int, int]]  # (input, reference) indices of the scored outputs, sorted
    real: Tensor  # (n, 3, H, W) held-out real Y images
    real_mask: Tensor  # (n, 1, H, W)
    sources: dict[str, str]  # where each set's images come from, in words
    seed: int  # seeds patch positions, directions, splits and classifier weights
    sets: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)  # calibration sets and masks
    swd: dict[str, SwdReference] = field(default_factory=dict)  # "whole" and "fg"


def _pool_files(root: Path | None, folder: str, seed: int) -> list[Path]:
    """Files of ``root/folder`` in a seeded order (none if the folder is absent)."""
    from histgan.data.image_files import list_images

    if root is None or not (root / folder).is_dir():  # no root: the test folders are all there is
        return []
    files = list_images(root / folder)
    return [files[i] for i in torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()]


def _load(root: Path, folder: str, files: list[Path], shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Images and masks of ``files`` (from ``root/folder``), at the test images' size."""
    from histgan.data.folders import load_item, mask_folder  # the loader's rules for masks, for a subset of files

    size = shape[-1] if shape[-1] == shape[-2] else None
    items = [load_item(p, mask_folder(root, folder, "auto"), size, "auto") for p in files]
    x, m = torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
    if tuple(x.shape[1:]) != tuple(shape):
        raise HistganError(f"images in {root / folder} are {tuple(x.shape[1:])} but the test images {tuple(shape)}")
    return x, m


def _take(test: tuple[Tensor, Tensor], root: Path | None, folder: str, files: list[Path],
          start: int, n: int) -> tuple[Tensor, Tensor, str]:
    """Images ``start … start+n`` of the pool "test images, then ``files``"; and where they came from."""
    k = len(test[0])
    a, b = min(start, k), min(start + n, k)
    parts = [(test[0][a:b], test[1][a:b])]
    extra = files[max(0, start - k) : max(0, start + n - k)]
    if extra:
        parts.append(_load(root, folder, extra, tuple(test[0].shape[1:])))
    words = " + ".join(w for w in (f"{b - a} test" if b > a else "", f"{len(extra)} {folder}" if extra else "") if w)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), words


def realism_size(data: EvalData, n_pairs: int, max_images: int = MAX_IMAGES) -> int:
    """Images per set: ``min(max_images, n_pairs, |testB ∪ trainB| // 2, |testA ∪ trainA|)``."""
    def count(folder: str) -> int:
        return len(_pool_files(data.root, folder, 0))

    return min(max_images, n_pairs, (len(data.ref) + count("trainB")) // 2, len(data.x) + count("trainA"))


def build_reference(data: EvalData, n_in: int, n_ref: int, n: int, seed: int = 0) -> RealismReference:
    """The sets for ``n`` images each (see the module docstring), with the SWD projections of the reference.

    Args:
        data: the evaluation data (its ``root``, when set, supplies ``trainA`` / ``trainB``).
        n_in, n_ref: the evaluated pairs are the first ``n_in`` inputs × first ``n_ref`` references.
        n: images per set (:func:`realism_size`), at least 2.
        seed: seeds every draw.
    """
    if n < 2 or n > n_in * n_ref:
        raise HistganError(f"realism sets need 2 <= n <= {n_in * n_ref} images, got n={n}; evaluate more pairs")
    chosen = torch.randperm(n_in * n_ref, generator=torch.Generator().manual_seed(seed))[:n]
    pairs = [(k // n_ref, k % n_ref) for k in sorted(chosen.tolist())]
    y_files, x_files = _pool_files(data.root, "trainB", seed), _pool_files(data.root, "trainA", seed)
    real, real_mask, real_src = _take((data.ref, data.ref_mask), data.root, "trainB", y_files, 0, n)
    floor, floor_mask, floor_src = _take((data.ref, data.ref_mask), data.root, "trainB", y_files, n, n)
    ceil, ceil_mask, ceil_src = _take((data.x, data.x_mask), data.root, "trainA", x_files, 0, n)
    if len(floor) < n or len(ceil) < n:
        raise HistganError(f"too few images for realism sets of {n}: {len(floor)} floor, {len(ceil)} X images")
    ref = RealismReference(n, pairs, real, real_mask, {"real": real_src, "floor": floor_src, "ceiling": ceil_src},
                           seed, {"floor": (floor, floor_mask), "ceiling": (ceil, ceil_mask)})
    if data.synthetic:
        ii, jj = map(list, zip(*pairs))
        ref.sets["ground_truth"] = (data.ground_truth(ii, jj) * 2.0 - 1.0, data.x_mask[ii])
        ref.sources["ground_truth"] = f"true targets of the {n} scored pairs"
    ref.swd = {"whole": SwdReference(real, seed=seed),
               "fg": SwdReference(fill_background(real, real_mask, BACKGROUND_FILL), seed=seed)}
    return ref


def score(ref: RealismReference, images: Tensor, masks: Tensor) -> dict[str, Any]:
    """Realism of ``n`` images ``(n, 3, H, W)`` with their masks against the reference set.

    Returns:
        ``swd_whole`` / ``swd_fg`` (SWD ×10³, mean over pyramid levels), ``swd_whole_levels`` /
        ``swd_fg_levels`` (per level, finest first), ``c2st_whole`` / ``c2st_fg`` (held-out accuracy),
        ``stripes`` (mean share of spectral energy in axis-aligned stripes, :func:`histgan.metrics.stripe_energy`).
    """
    fg = fill_background(images, masks, BACKGROUND_FILL)
    real_fg = fill_background(ref.real, ref.real_mask, BACKGROUND_FILL)
    out: dict[str, Any] = {}
    for kind, a, b in (("whole", images, ref.real), ("fg", fg, real_fg)):
        levels = ref.swd[kind].distance(a)
        out[f"swd_{kind}"], out[f"swd_{kind}_levels"] = float(levels.mean()), [float(v) for v in levels]
        out[f"c2st_{kind}"] = c2st_accuracy(a, b, seed=ref.seed)
    out["stripes"] = float(np.nanmean(stripe_energy(images)))
    return {k: out[k] for k in (*REALISM_METRICS, "swd_whole_levels", "swd_fg_levels")}


def calibration(ref: RealismReference) -> dict[str, dict[str, Any]]:
    """:func:`score` of each calibration set (floor, ceiling, ground truth when known), with its source."""
    return {name: {**score(ref, x, m), "source": ref.sources[name], "n": ref.n} for name, (x, m) in ref.sets.items()}
