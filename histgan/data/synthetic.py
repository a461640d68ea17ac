"""The synthetic knee benchmark: unpaired X ("simulator") / Y ("real") images with ground truth.

Shapes and appearances are drawn from seeded distributions. X is the simulator's grey render
(:func:`histgan.data.render.render_x`); Y comes in two domains: ``plain`` (:func:`histgan.data.render.render_y`,
the simulator's shading times a skin colour) and ``photo`` (:func:`histgan.data.photo.render_photo`, with
skin texture, scattering, sheen, occlusion, textured scenes, a cast shadow and a camera; the default,
:data:`histgan.data.sampling.DEFAULT_DOMAIN`, and the book's benchmark). One seed gives the same knees, skin
tones and background colours in both domains.
Because every Y image's appearance is kept in ``meta.json``, any X test input can be rendered with
any Y test reference's appearance: that rendering is the **true target** of translating the input
with that reference (:func:`ground_truth`), which the paper's real data could not provide.

The distributions of shapes, skin tones (Monk Skin Tone scale) and scenes are in :mod:`histgan.data.sampling`.

Layout written by :func:`write_dataset` (the CycleGAN layout plus masks and metadata)::

    out/trainA/x0000.png   out/trainA_mask/x0000.png   (8-bit, 255 = foreground, 0 = background)
    out/trainB/y0000.png   out/trainB_mask/y0000.png
    out/testA/ ...         out/testB/ ...               out/meta.json
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from histgan.errors import HistganError
from histgan.io import atomic_save_png, atomic_write_json
from histgan.data.photo import render_photo
from histgan.data.photo_appearance import PhotoAppearance
from histgan.data.render import KneeShape, SkinAppearance, geometry, render_x, render_y
from histgan.data.sampling import DEFAULT_DOMAIN, MST_HEX, check_domain, sample_appearance, sample_shape

__all__ = ["PRESETS", "SynthPreset", "RENDER_Y", "image_params", "appearance_from_meta", "write_dataset", "load_meta",
           "image_entry", "ground_truth", "ground_truth_mask", "contact_sheet"]

#: Version of the generator; a dataset written by another version is not resumed. 2: meta.json
#: records the Y domain (a version-1 set, written before, is ``plain``).
FORMAT_VERSION = 2
#: The Y renderer of each domain: ``(shape, appearance, size[, geometry])`` → ``(H, W, 3)`` uint8 sRGB.
RENDER_Y = {"plain": render_y, "photo": render_photo}
_APPEARANCE = {"plain": SkinAppearance, "photo": PhotoAppearance}
_SPLITS = ("train", "test")


@dataclass(frozen=True)
class SynthPreset:
    """Size and counts of a synthetic set."""

    size: int  # image side in pixels
    n_train: tuple[int, int]  # training images in X (trainA) and Y (trainB)
    n_test: tuple[int, int]  # test images in X (testA) and Y (testB)


#: Named dataset sizes: ``cpu`` (default, the main job's data), ``quick`` (tests), ``paper`` (438/477, 28/28, 256²).
PRESETS: dict[str, SynthPreset] = {
    "cpu": SynthPreset(size=64, n_train=(400, 400), n_test=(16, 16)),
    "quick": SynthPreset(size=32, n_train=(6, 6), n_test=(3, 3)),
    "paper": SynthPreset(size=256, n_train=(438, 477), n_test=(28, 28)),
}


def image_params(seed: int, split: str, letter: str, index: int,
                  domain: str = "plain") -> tuple[KneeShape, SkinAppearance | None]:
    """Parameters of one image (``letter`` A = X, B = Y), from its own random stream (independent of
    every other image); a Y image of the ``photo`` domain extends the ``plain`` one's draws."""
    rng = np.random.default_rng([seed, _SPLITS.index(split), "AB".index(letter), index])
    shape = sample_shape(rng)
    return shape, (sample_appearance(rng, domain) if letter == "B" else None)


def _as_pair(n: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (n, n) if isinstance(n, (int, np.integer)) else tuple(n)
    if len(pair) != 2 or any(int(k) != k or k < 0 for k in pair):
        raise ValueError(f"{name} must be a count >= 0 or a pair (n_A, n_B), got {n!r}")
    return int(pair[0]), int(pair[1])


def _plan(size: int, n_train, n_test, seed: int, domain: str) -> dict:
    """The whole dataset's metadata: everything needed to render any of its images."""
    counts = {}
    for split, n in (("train", _as_pair(n_train, "n_train")), ("test", _as_pair(n_test, "n_test"))):
        counts[f"{split}A"], counts[f"{split}B"] = n
    images: dict[str, dict] = {}
    for folder, n in counts.items():
        split, letter = folder[:-1], folder[-1]
        images[folder] = {}
        for i in range(n):
            shape, app = image_params(seed, split, letter, i, domain)
            entry = {"shape": asdict(shape)}
            if app is not None:
                entry["appearance"] = asdict(app)
            images[folder][f"{'xy'['AB'.index(letter)]}{i:04d}.png"] = entry
    return {"generator": "histgan.data.synthetic", "version": FORMAT_VERSION, "seed": int(seed), "size": int(size),
            "domain": domain, "counts": counts, "mask": "8-bit PNG, 255 = foreground (signed distance < 0), 0 = background",
            "monk_skin_tone_hex": list(MST_HEX), "images": images}


def _render(meta: dict, folder: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    entry, size = meta["images"][folder][name], meta["size"]
    shape = KneeShape(**entry["shape"])
    geo = geometry(shape, size)
    if "appearance" in entry:
        domain = meta.get("domain", "plain")
        img = RENDER_Y[domain](shape, appearance_from_meta(entry["appearance"], domain), size, geo)
    else:
        img = render_x(shape, size, geo)
    return img, geo.mask.astype(np.uint8) * 255


def appearance_from_meta(d: dict, domain: str = "plain") -> SkinAppearance:
    """The appearance of ``domain`` stored as ``d`` in ``meta.json`` (lists back to tuples)."""
    return _APPEARANCE[domain](**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def write_dataset(out: str | os.PathLike, size: int = PRESETS["cpu"].size,
                  n_train: int | tuple[int, int] = PRESETS["cpu"].n_train,
                  n_test: int | tuple[int, int] = PRESETS["cpu"].n_test,
                  seed: int = 0, progress: bool = True, domain: str = DEFAULT_DOMAIN) -> Path:
    """Write the synthetic benchmark to ``out`` (layout in the module docstring); resumable.

    Every file is written atomically. Rerunning with the same arguments after an interruption
    renders only the missing images (and removes temporary files a killed run left behind);
    rerunning into a folder written with other arguments is an error.

    Args:
        out: destination folder (created if missing).
        size: image side in pixels (>= 16).
        n_train: training images per domain, or a pair ``(n_A, n_B)``.
        n_test: test images per domain, or a pair ``(n_A, n_B)``.
        seed: random seed; the same seed gives byte-identical files on one platform.
        progress: show a tqdm progress bar.
        domain: the Y domain, ``plain`` or ``photo`` (see the module doc). A folder written with one
            domain is never completed with the other.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    if int(size) != size or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HistganError(f"{out} exists and is not a folder; choose another --out")
    check_domain(domain)
    meta = _plan(int(size), n_train, n_test, int(seed), domain)
    _check_resumable(out, meta)
    atomic_write_json(out / "meta.json", {**meta, "complete": False})
    todo = [(f, n) for f, names in meta["images"].items() for n in names]
    _remove_stale_temporaries(out, meta["counts"])
    from histgan.progress import progress_bar

    with progress_bar(total=len(todo), desc=f"synth {out}", unit="img", disable=not progress) as bar:
        for folder, name in todo:
            img_path, mask_path = out / folder / name, out / f"{folder}_mask" / name
            if not (img_path.is_file() and mask_path.is_file()):
                img, mask = _render(meta, folder, name)
                atomic_save_png(mask_path, mask)
                atomic_save_png(img_path, img)
            bar.update(1)
    atomic_write_json(out / "meta.json", {**meta, "complete": True})
    return out


def _check_resumable(out: Path, meta: dict) -> None:
    path = out / "meta.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HistganError(f"{path} is unreadable ({exc}); delete {out} or choose another --out") from exc
    if old.get("domain", "plain") != meta["domain"]:
        raise HistganError(f"{out} already holds a synthetic set of the {old.get('domain', 'plain')!r} domain, "
                           f"not {meta['domain']!r}; rerun with domain={old.get('domain', 'plain')!r} "
                           "(--domain), or choose another --out")
    if old.get("version") != meta["version"]:
        raise HistganError(f"{out} holds a synthetic set of format version {old.get('version')}, this generator "
                           f"writes version {meta['version']}; delete {out} or choose another --out")
    if old.get("generator") not in (meta["generator"], *_FORMER_NAMES):
        raise HistganError(f"{out} holds a set written by {old.get('generator')!r}, not by this generator; "
                           "delete it or choose another --out")
    keys = ("seed", "size", "counts")
    if any(old.get(k) != meta[k] for k in keys):
        was = ", ".join(f"{k}={old.get(k)}" for k in keys)
        raise HistganError(f"{out} already holds a synthetic set with other parameters ({was}); "
                           "rerun with those, or choose another --out")


#: This module's names before the package was split into layers: the sets they wrote are byte-identical
#: to this generator's at the same format version, so a folder they wrote is completed, not refused.
_FORMER_NAMES = ("histgan.synthetic",)


def _remove_stale_temporaries(out: Path, counts: dict) -> None:
    """Delete ``.NAME.*.tmp`` files left by a killed run (io.atomic_path's temporary names)."""
    for folder in list(counts) + [f"{f}_mask" for f in counts]:
        if (out / folder).is_dir():
            for tmp in (out / folder).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=8)
def _cached_meta(path: str, mtime_ns: int, nbytes: int) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_meta(root: str | os.PathLike) -> dict:
    """``root/meta.json`` of a synthetic set, cached until the file changes."""
    path = Path(root) / "meta.json"
    try:
        st = path.stat()
        return _cached_meta(str(path.resolve()), st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        raise HistganError(f"{path} not found: {root} is not a synthetic set "
                           "(write one with 'python -m histgan data synth')") from None
    except ValueError as exc:
        raise HistganError(f"{path} is not valid JSON ({exc})") from exc


def image_entry(root, folder: str, name: str) -> tuple[dict, dict]:
    """``root``'s metadata and the entry of image ``folder/name`` in it (its shape, and a Y image's appearance)."""
    meta = load_meta(root)
    try:
        return meta, meta["images"][folder][name]
    except KeyError:
        raise HistganError(f"{name} is not an image of {Path(root) / folder} in {Path(root) / 'meta.json'}") from None


def ground_truth(root: str | os.PathLike, x_name: str, y_name: str) -> np.ndarray:
    """True target of translating ``testA/x_name`` with reference ``testB/y_name``.

    The X input's shape and lighting rendered with the Y reference's appearance (skin, camera,
    background; for the ``photo`` domain also the texture fields, the cast shadow's softness and
    the sensor noise, from the reference's seeds), quantised like the files on disk.

    Returns:
        ``(H, W, 3)`` float32 in [0, 1].
    """
    meta, x = image_entry(root, "testA", x_name)
    _, y = image_entry(root, "testB", y_name)
    domain = meta.get("domain", "plain")
    img = RENDER_Y[domain](KneeShape(**x["shape"]), appearance_from_meta(y["appearance"], domain), meta["size"])
    return img.astype(np.float32) / 255.0


def ground_truth_mask(root: str | os.PathLike, x_name: str) -> np.ndarray:
    """Foreground of ``testA/x_name`` (equal to its mask file), ``(H, W)`` bool."""
    meta, x = image_entry(root, "testA", x_name)
    return geometry(KneeShape(**x["shape"]), meta["size"]).mask


def contact_sheet(n: int = 8, size: int = 64, seed: int = 0, domain: str = DEFAULT_DOMAIN) -> np.ndarray:
    """A picture of the benchmark, ``(H, W, 3)`` float in [0, 1] (see :func:`histgan.images.image_grid`).

    Row 1: ``n`` X images. Row 2: the same shapes with ``n`` Y appearances (ground-truth pairs).
    Rows 3–4: ``2 n`` independent Y images, as in ``trainB``. Y images are of ``domain``; one seed
    shows the same knees and skin tones in either domain, so two sheets compare them side by side.
    """
    from histgan.images import image_grid

    check_domain(domain)
    render = RENDER_Y[domain]
    xs, same, ys = [], [], []
    for i in range(n):
        shape, _ = image_params(seed, "train", "A", i)
        _, app = image_params(seed, "train", "B", i, domain)
        xs.append(render_x(shape, size) / 255.0)
        same.append(render(shape, app, size) / 255.0)
    for i in range(2 * n):
        shape, app = image_params(seed, "test", "B", i, domain)
        ys.append(render(shape, app, size) / 255.0)
    return image_grid([xs, same, ys[:n], ys[n:]])
