"""Tests of the photographic Y domain: histgan.data.photo, histgan.data.skin, histgan.data.backdrop, histgan.data.camera,
histgan.data.procedural, and the ``domain`` of histgan.data.synthetic."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histgan.data import synthetic
from histgan.data.backdrop import background, cast_shadow
from histgan.data.camera import NOISE_READ, NOISE_SHOT, jpeg_round_trip, sensor_noise, vignetting
from histgan.errors import HistganError
from histgan.colour_difference import rgb_to_lab
from histgan.data.photo import occlusion, render_photo
from histgan.data.photo_appearance import BACKGROUNDS, PHOTO_RANGES, PhotoAppearance
from histgan.data.procedural import gaussian_blur, grid_noise, lattice_noise
from histgan.data.render import AMBIENT_Y, KneeShape, geometry, light_direction, render_x, render_y, silhouette
from histgan.data.skin import bump_normals, skin_shading

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour-science warns that SciPy is absent
    import colour

SMALL = dict(size=32, n_train=(2, 3), n_test=(2, 3), progress=False)


def _params(i: int, domain: str = "photo"):
    return synthetic.image_params(7, "test", "B", i, domain)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory) -> Path:
    return synthetic.write_dataset(tmp_path_factory.mktemp("photo") / "set", seed=0, domain="photo", **SMALL)


# ---- the domain in the dataset ------------------------------------------------------------------
def test_plain_renders_are_those_before_the_photo_domain() -> None:
    """Golden hash of X and plain-Y renders, computed with the renderer of commit 7779a77 (before
    this domain existed): the plain domain is bit-identical."""
    h = hashlib.sha256()
    for i in range(4):
        shape, app = synthetic.image_params(11, "train", "B", i)
        h.update(render_y(shape, app, 48).tobytes())
        h.update(render_x(shape, 48).tobytes())
    assert h.hexdigest() == "05782498148b26f6bd3d0b6383d45ef7d06e9f95995d275ff6e6281fd28bf7cc"


def test_photo_set_records_domain_and_parameters(photo_set: Path) -> None:
    meta = json.loads((photo_set / "meta.json").read_text())
    assert meta["domain"] == "photo" and meta["version"] == synthetic.FORMAT_VERSION == 2
    for name, entry in meta["images"]["testB"].items():
        app = PhotoAppearance(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["appearance"].items()})
        assert app.background in BACKGROUNDS and app.skin_seed != app.sensor_seed
        mask = np.asarray(Image.open(photo_set / "testB_mask" / name)) > 0  # masks stay the geometric s < 0
        np.testing.assert_array_equal(mask, geometry(KneeShape(**entry["shape"]), 32).mask)


def test_photo_and_plain_share_knees_and_tones() -> None:
    for i in range(3):
        shape_p, app_p = _params(i, "plain")
        shape_f, app_f = _params(i, "photo")
        assert shape_p == shape_f and isinstance(app_f, PhotoAppearance)
        assert all(getattr(app_f, k) == v for k, v in app_p.__dict__.items())


def test_ground_truth_is_the_rerender_with_stored_parameters(photo_set: Path) -> None:
    meta = synthetic.load_meta(photo_set)
    for x_name, y_name in (("x0000.png", "y0001.png"), ("x0001.png", "y0002.png")):
        gt = synthetic.ground_truth(photo_set, x_name, y_name)
        x = meta["images"]["testA"][x_name]
        y = meta["images"]["testB"][y_name]
        app = PhotoAppearance(**{k: tuple(v) if isinstance(v, list) else v for k, v in y["appearance"].items()})
        again = render_photo(KneeShape(**x["shape"]), app, 32)
        np.testing.assert_array_equal(gt, again.astype(np.float32) / 255.0)
        # the reference's own shape with its appearance gives back the file on disk, byte for byte
        own = render_photo(KneeShape(**y["shape"]), app, 32)
        np.testing.assert_array_equal(own, np.asarray(Image.open(photo_set / "testB" / y_name)))
        assert not np.array_equal(gt, synthetic.ground_truth(photo_set, x_name, "y0000.png"))


def test_same_seed_same_bytes_other_seed_other_bytes(photo_set: Path, tmp_path: Path) -> None:
    again = synthetic.write_dataset(tmp_path / "again", seed=0, domain="photo", **SMALL)
    other = synthetic.write_dataset(tmp_path / "other", seed=1, domain="photo", **SMALL)
    assert _files(again) == _files(photo_set)
    a, o = _files(photo_set), _files(other)
    assert all(a[k] != o[k] for k in a if k.endswith(".png") and "_mask" not in k)
    shape, app = _params(0)
    one = render_photo(shape, app, 40)
    assert np.array_equal(one, render_photo(shape, app, 40))
    for field in ("skin_seed", "sensor_seed", "noise_seed"):  # every seed drives a field of its own
        assert not np.array_equal(one, render_photo(shape, replace(app, **{field: getattr(app, field) + 1}), 40))


def test_domain_mismatch_on_resume_is_refused(photo_set: Path, tmp_path: Path) -> None:
    with pytest.raises(HistganError, match="'photo' domain, not 'plain'.*domain='photo'"):
        synthetic.write_dataset(photo_set, seed=0, domain="plain", **SMALL)
    plain = synthetic.write_dataset(tmp_path / "plain", seed=0, domain="plain", **SMALL)
    assert synthetic.load_meta(plain)["domain"] == "plain"
    with pytest.raises(HistganError, match="'plain' domain, not 'photo'"):
        synthetic.write_dataset(plain, seed=0, domain="photo", **SMALL)
    with pytest.raises(HistganError, match="domain must be one of plain, photo, got 'real'"):
        synthetic.write_dataset(tmp_path / "bad", domain="real", **SMALL)
    assert not (tmp_path / "bad").exists()


def test_set_of_another_format_version_is_refused(photo_set: Path, tmp_path: Path) -> None:
    old = tmp_path / "v1"
    old.mkdir()
    meta = json.loads((photo_set / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps({**meta, "version": 1, "domain": "photo"}))
    with pytest.raises(HistganError, match="format version 1, this generator writes version 2"):
        synthetic.write_dataset(old, seed=0, domain="photo", **SMALL)


def test_contact_sheet_domains() -> None:
    plain = synthetic.contact_sheet(n=2, size=16, domain="plain")
    photo = synthetic.contact_sheet(n=2, size=16)  # the default domain is the photographic one
    assert plain.shape == photo.shape == (4 * 18 + 2, 2 * 18 + 2, 3)
    np.testing.assert_array_equal(plain[: 18 + 2], photo[: 18 + 2])  # row 1: the same X images
    assert not np.array_equal(plain, photo)
    with pytest.raises(HistganError, match="domain"):
        synthetic.contact_sheet(n=1, size=16, domain="both")


# ---- what makes it photographic ------------------------------------------------------------------
def _relative_residual(x: np.ndarray, y: np.ndarray, mask: np.ndarray, design) -> float:
    """Least-squares fit ``Lab_y ≈ design(Lab_x) @ C`` over ``mask``: residual / total sum of squares."""
    lab_x, lab_y = (rgb_to_lab(np.moveaxis(im, -1, 0).astype(np.float32) / 255.0, value_range=(0, 1))[:, mask].T
                    .astype(np.float64) for im in (x, y))
    a = design(lab_x)
    coef, *_ = np.linalg.lstsq(a, lab_y, rcond=None)
    return float(((lab_y - a @ coef) ** 2).sum() / ((lab_y - lab_y.mean(0)) ** 2).sum())


def _affine(lab: np.ndarray) -> np.ndarray:
    return np.concatenate([lab, np.ones((len(lab), 1))], axis=1)


def _cubic_in_lightness(lab: np.ndarray) -> np.ndarray:
    return np.stack([lab[:, 0] ** k for k in range(4)], axis=1)


def test_photo_is_not_a_map_of_the_grey_level() -> None:
    """Per image, over pixels fully inside the knee (the rim mixes in two different backgrounds):

    - the best affine map ``Lab_y ≈ A Lab_x + b`` leaves a relative residual of at most 0.20 on
      plain (measured over 40 images at 64²: max 0.19, mean 0.055 — not 0, since X writes its shading
      without gamma, so L*(Y) is a curve of L*(X)) and at least 0.15 on photo (min 0.16, mean 0.32);
    - a cubic curve of L*(X) — any smooth grey→colour mapping — explains plain up to 0.04 (max 0.033)
      but leaves at least 0.05 on photo (min 0.062, mean 0.26): texture, noise, sheen, occlusion and
      red shadows are not a function of the grey level.
    """
    res = {"plain": [], "photo": []}
    for i in range(12):
        for domain, render in (("plain", render_y), ("photo", render_photo)):
            shape, app = synthetic.image_params(0, "test", "B", i, domain)
            geo = geometry(shape, 64)
            x, y, inside = render_x(shape, 64, geo), render(shape, app, 64, geo), geo.coverage >= 1.0
            res[domain].append((_relative_residual(x, y, inside, _affine),
                                _relative_residual(x, y, inside, _cubic_in_lightness)))
    plain, photo = np.array(res["plain"]), np.array(res["photo"])
    assert plain[:, 0].max() <= 0.20 and plain[:, 1].max() <= 0.04, plain.max(0)
    assert photo[:, 0].min() >= 0.15 and photo[:, 1].min() >= 0.05, photo.min(0)
    assert photo[:, 0].mean() >= 4 * plain[:, 0].mean() and photo[:, 1].mean() >= 10 * plain[:, 1].mean()


def test_skin_mean_stays_near_its_swatch() -> None:
    """With neutral exposure, white balance and no vignetting, the photographed skin's mean colour is
    within ΔE 13 (JIS grade C) of the albedo; redness and red shadows move it (60 images at 64²:
    max 10.0, mean 4.6)."""
    for i in range(8):
        shape, app = _params(i)
        img = render_photo(shape, replace(app, exposure=0.0, white_balance=(1.0, 1.0, 1.0), vignetting=0.0), 64)
        mean = (img / 255.0)[geometry(shape, 64).mask].mean(axis=0)
        lab = [colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.asarray(c, float))) for c in (mean, app.albedo)]
        assert np.linalg.norm(lab[0] - lab[1]) < 13.0, i


def test_skin_shading_without_scattering_is_lambert_and_with_it_shadows_turn_red() -> None:
    n = np.stack(np.meshgrid(np.linspace(-1, 1, 41), [0.0], indexing="xy"), -1)[0]  # normals in the x-z plane
    normal = np.stack([n[:, 0], np.zeros(41), np.sqrt(1 - n[:, 0] ** 2)], -1)[None]
    light = np.array([1.0, 0.0, 0.0])  # grazing light from the right: n·l runs from -1 to 1
    lambert = AMBIENT_Y + (1 - AMBIENT_Y) * np.maximum(normal @ light, 0.0)
    np.testing.assert_allclose(skin_shading(normal, normal, light, 0.0, AMBIENT_Y), np.repeat(lambert[..., None], 3, -1))
    s = skin_shading(normal, normal, light, 1.0, AMBIENT_Y)[0]
    terminator = (normal[0] @ light > -0.3) & (normal[0] @ light < 0.2)
    assert np.all(s[terminator, 0] > s[terminator, 1]) and np.all(s[terminator, 1] >= s[terminator, 2])
    assert np.all(np.diff(s[:, 0]) >= 0)  # still brighter towards the light


def test_bump_normals_are_unit_and_flat_height_changes_nothing() -> None:
    geo = geometry(_params(0)[0], 32)
    np.testing.assert_array_equal(bump_normals(geo.normal, np.zeros((32, 32)), 32), geo.normal / np.linalg.norm(
        geo.normal, axis=-1, keepdims=True))
    bumped = bump_normals(geo.normal, 0.01 * grid_noise(np.random.default_rng(0), 32, 0.1), 32)
    np.testing.assert_allclose(np.linalg.norm(bumped, axis=-1), 1.0, atol=1e-12)


def test_occlusion_darkens_pits_only() -> None:
    flat = np.full((32, 32), 0.2)
    np.testing.assert_allclose(occlusion(flat, 32, 1.0), 1.0)
    pit = flat.copy()
    pit[14:18, 14:18] = 0.1
    ao = occlusion(pit, 32, 1.0)
    assert ao[15, 15] < 0.8 and ao[0, 0] == 1.0 and np.all(ao <= 1.0) and np.all(ao[pit == 0.2] > 0.999)
    deeper = pit.copy()
    deeper[14:18, 14:18] = 0.0
    assert occlusion(deeper, 32, 1.0)[15, 15] < ao[15, 15] and occlusion(pit, 32, 2.0)[15, 15] < ao[15, 15]
    np.testing.assert_allclose(occlusion(pit, 32, 0.0), 1.0)


def test_cast_shadow_falls_away_from_the_light() -> None:
    shape = replace(_params(1)[0], light_azimuth=0.0, light_elevation=40.0)  # light from the right
    leg = silhouette(shape, 64)
    shadow = cast_shadow(shape, 64, 0.1, 0.2)
    x = np.arange(64)[None, :]
    assert (shadow * x).sum() / shadow.sum() < (leg * x).sum() / leg.sum() - 3  # moved left, by pixels
    np.testing.assert_allclose(cast_shadow(shape, 64, 0.0, 0.0), gaussian_blur(leg, 0.01 * 32), atol=1e-12)
    l = light_direction(shape)
    assert l[0] > 0 and abs(l[1]) < 1e-12


@pytest.mark.parametrize("kind", BACKGROUNDS)
def test_backgrounds_are_textured_not_flat(kind: str) -> None:
    shape, app = _params(2)
    bg = background(replace(app, background=kind), light_direction(shape), 64, np.random.default_rng(0))
    assert bg.shape == (64, 64, 3) and np.isfinite(bg).all() and bg.min() >= 0
    detail = bg[..., 1] - gaussian_blur(bg[..., 1], 4.0)  # what a smooth gradient cannot have
    assert detail.std() > 0.002 * bg[..., 1].mean(), kind


# ---- the camera -----------------------------------------------------------------------------------
def test_vignetting_is_cos4_law() -> None:
    v = vignetting(64, 0.2)
    assert v.max() <= 1.0 and v[32, 32] > 0.999
    r2 = 2 * (1 - 1 / 64) ** 2  # the corner pixel's centre
    assert math.isclose(v[0, 0], (1 + 0.2 * r2) ** -2, rel_tol=1e-12)
    np.testing.assert_array_equal(v, v.T)
    np.testing.assert_array_equal(v, v[::-1])


def test_sensor_noise_has_the_poisson_gaussian_variance() -> None:
    for level, iso in ((0.02, 1600.0), (0.5, 100.0), (0.5, 3200.0)):
        flat = np.full((256, 256, 3), level)
        noisy = sensor_noise(flat, iso, np.random.default_rng(1))
        g = iso / 100
        expected = math.sqrt(g * NOISE_SHOT * level + (g * NOISE_READ) ** 2)
        assert abs((noisy - flat).std() / expected - 1) < 0.02  # 196 608 samples: 1 σ of the ratio is 0.002
    small = sensor_noise(np.full((64, 64, 3), 0.5), 100.0, np.random.default_rng(1)) - 0.5
    assert abs(small.std() / (0.25 * math.sqrt(NOISE_SHOT * 0.5 + NOISE_READ**2)) - 1) < 0.05


def test_jpeg_round_trip_is_deterministic_and_lossy_by_quality() -> None:
    shape, app = _params(3, "plain")
    img = render_y(shape, app, 64)
    q95, q50 = jpeg_round_trip(img, 95), jpeg_round_trip(img, 50)
    assert q95.dtype == np.uint8 and q95.shape == img.shape
    np.testing.assert_array_equal(q95, jpeg_round_trip(img, 95))
    err = [np.abs(q.astype(int) - img).mean() for q in (q95, q50)]
    assert 0 < err[0] < err[1] < 10


# ---- procedural fields ----------------------------------------------------------------------------
def test_lattice_noise_interpolates_and_tiles() -> None:
    lattice = np.random.default_rng(0).standard_normal((8, 8))
    j, i = np.mgrid[0:8, 0:8]
    np.testing.assert_array_equal(lattice_noise(lattice, i.astype(float), j.astype(float)), lattice)
    u = np.linspace(-5, 5, 101)[None, :]
    v = np.linspace(-3, 7, 97)[:, None]
    np.testing.assert_allclose(lattice_noise(lattice, u + 8, v - 16), lattice_noise(lattice, u, v), atol=1e-12)
    mid = lattice_noise(lattice, np.array([0.5]), np.array([0.0]))
    np.testing.assert_allclose(mid, (lattice[0, 0] + lattice[0, 1]) / 2)


@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0, 6.0])
def test_gaussian_blur_keeps_mass_and_has_width_sigma(sigma: float) -> None:
    img = np.zeros((81, 81))
    img[40, 40] = 1.0
    out = gaussian_blur(img, sigma)
    x = np.arange(81) - 40
    width = math.sqrt((out.sum(0) * x**2).sum())
    assert math.isclose(out.sum(), 1.0, rel_tol=1e-9) and abs(width - sigma) < 0.25 * sigma + 0.05
    np.testing.assert_allclose(out, out.T, atol=1e-15)
    np.testing.assert_allclose(gaussian_blur(np.full((20, 30, 3), 0.3), sigma), 0.3, atol=1e-12)


# ---- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PHOTO_RANGES))
def test_every_numeric_parameter_is_validated(name: str) -> None:
    _, app = _params(0)
    lo, hi = PHOTO_RANGES[name]
    for bad in (hi + 1, lo - 1, float("nan"), True, "0.5"):
        with pytest.raises(HistganError, match=f"PhotoAppearance.{name} must be"):
            replace(app, **{name: bad})


@pytest.mark.parametrize("name, bad", [("skin_seed", -1), ("skin_seed", 1.5), ("sensor_seed", 2**63),
                                       ("jpeg_quality", 90.0), ("background", "grass"), ("background", None)])
def test_seeds_quality_and_background_are_validated(name: str, bad) -> None:
    _, app = _params(0)
    with pytest.raises(HistganError, match=f"PhotoAppearance.{name} must be"):
        replace(app, **{name: bad})
