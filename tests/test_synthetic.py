"""Tests of the synthetic knee benchmark (histgan.data.synthetic, histgan.data.render) and `data synth`."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histgan import cli
from histgan.data import sampling, synthetic
from histgan.errors import HistganError
from histgan.data.render import AMBIENT, X_ALBEDO, X_BACKGROUND, KneeShape, geometry, render_x, render_y

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour-science warns that SciPy is absent
    import colour

SMALL = dict(size=32, n_train=(2, 3), n_test=(2, 2), progress=False, domain="plain")  # this file checks the plain domain; test_photo.py the photographic one


def _lab(rgb01: np.ndarray) -> np.ndarray:
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.asarray(rgb01, dtype=np.float64)))


def _delta_e(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _params(i: int, split: str = "test", domain: str = "B"):
    return synthetic.image_params(7, split, domain, i)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return synthetic.write_dataset(tmp_path_factory.mktemp("synth") / "set", seed=0, **SMALL)


def test_layout_and_meta(small_set: Path) -> None:
    meta = json.loads((small_set / "meta.json").read_text())
    assert meta["complete"] and meta["seed"] == 0 and meta["size"] == 32
    assert meta["counts"] == {"trainA": 2, "trainB": 3, "testA": 2, "testB": 2}
    for folder, n in meta["counts"].items():
        names = sorted(p.name for p in (small_set / folder).iterdir())
        assert names == sorted(meta["images"][folder]) and len(names) == n
        assert names == sorted(p.name for p in (small_set / f"{folder}_mask").iterdir())
        for name in names:
            entry = meta["images"][folder][name]
            assert set(entry) == ({"shape", "appearance"} if folder.endswith("B") else {"shape"})
            img, mask = Image.open(small_set / folder / name), Image.open(small_set / f"{folder}_mask" / name)
            assert (img.mode, img.size, mask.mode, mask.size) == ("RGB", (32, 32), "L", (32, 32))
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_same_seed_same_bytes_other_seed_other_bytes(small_set: Path, tmp_path: Path) -> None:
    again = synthetic.write_dataset(tmp_path / "again", seed=0, **SMALL)
    other = synthetic.write_dataset(tmp_path / "other", seed=1, **SMALL)
    assert _files(again) == _files(small_set)
    a, o = _files(small_set), _files(other)
    pngs = [k for k in a if k.endswith(".png")]
    assert all(a[k] != o[k] for k in pngs if "_mask" not in k)


@pytest.mark.parametrize("size, bound", [(128, 0.98), (64, 0.96)])
def test_mask_matches_threshold_of_x_render(size: int, bound: float) -> None:
    """IoU of the mask with a threshold of the X render (halfway between the background and the
    darkest foreground, ambient light only) is at least 0.98 at 128² (100 shapes measured: min 0.984).

    At 64² the outline is a larger share of the knee and a lit rim pixel only 7 % covered already
    crosses the threshold (the mask is the 50 % coverage line), so the bound there is 0.96
    (measured: min 0.965, mean 0.980)."""
    level = (255 * X_BACKGROUND + 255 * X_ALBEDO * AMBIENT) / 2
    for i in range(8):
        shape, _ = _params(i, "train", "A")
        geo = geometry(shape, size)
        fg = render_x(shape, size, geo)[..., 0] > level
        iou = (fg & geo.mask).sum() / (fg | geo.mask).sum()
        assert iou >= bound, (i, iou)
        assert 0.05 < geo.mask.mean() < 0.9  # the knee is in the picture, not the whole picture


def test_silhouette_is_antialiased() -> None:
    """Coverage has intermediate values only along the outline, and sums to about the mask area."""
    shape, _ = _params(0)
    geo = geometry(shape, 64)
    edge = (geo.coverage > 0) & (geo.coverage < 1)
    assert edge.sum() > 40  # an outline of a few hundred pixels' length at 64²
    assert abs(geo.coverage.sum() - geo.mask.sum()) < 0.1 * edge.sum() + 1
    np.testing.assert_array_equal(geo.mask, geo.coverage > 0.5)  # the mask is the 50 % coverage line


def test_monk_swatches_are_exact_at_integer_tones_and_darken() -> None:
    for k, h in enumerate(sampling.MST_HEX, start=1):
        rgb = np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        np.testing.assert_allclose(sampling.monk_albedo(float(k)), rgb, atol=1e-12)
    lightness = [_lab(sampling.monk_albedo(t))[0] for t in np.linspace(1, 10, 37)]
    assert lightness[0] > 90 and lightness[-1] < 20
    assert np.all(np.diff(lightness[9:]) < 0)  # MST 3.25 … 10 darken monotonically (MST 1–3 are all near L* 93–95)
    with pytest.raises(ValueError, match="tone"):
        sampling.monk_albedo(11.0)


def test_y_foreground_mean_colour_follows_skin_tone() -> None:
    """Under neutral exposure and white balance the rendered foreground mean is within ΔE 3.2 (the
    top of JIS grade A) of the image's albedo, and the albedo within ΔE 6 of the Monk swatch at its
    tone (the jitter). Measured over 300 images: max 2.3, mean 0.7."""
    for i in range(24):
        shape, app = _params(i)
        neutral = replace(app, exposure=0.0, white_balance=(1.0, 1.0, 1.0))
        img = render_y(shape, neutral, 64) / 255.0
        mean = img[geometry(shape, 64).mask].mean(axis=0)
        assert _delta_e(mean, np.array(app.albedo)) < 3.2, (i, app.tone)
        assert _delta_e(np.array(app.albedo), sampling.monk_albedo(app.tone)) < 6.0


def test_exposure_and_white_balance_act() -> None:
    shape, app = _params(3)
    base = render_y(shape, replace(app, exposure=0.0, white_balance=(1.0, 1.0, 1.0)), 32).astype(float)
    darker = render_y(shape, replace(app, exposure=-1.0, white_balance=(1.0, 1.0, 1.0)), 32).astype(float)
    warm = render_y(shape, replace(app, exposure=0.0, white_balance=(1.2, 1.0, 0.8)), 32).astype(float)
    assert darker.mean() < base.mean() - 10
    assert (warm[..., 0] - warm[..., 2]).mean() > (base[..., 0] - base[..., 2]).mean() + 5


def test_y_background_is_not_skin() -> None:
    """Background hues avoid the skin range: the mean background hue angle lies outside 10°–50°."""
    for i in range(20):
        shape, app = _params(i)
        img = render_y(shape, replace(app, white_balance=(1.0, 1.0, 1.0)), 32) / 255.0
        bg = img[geometry(shape, 32).coverage == 0].mean(axis=0)
        lab = _lab(bg)
        hue = np.degrees(np.arctan2(lab[2], lab[1])) % 360
        chroma = np.hypot(lab[1], lab[2])
        assert chroma < 4 or not (20 <= hue <= 70), (i, hue, chroma)  # skin: Lab hue ≈ 40–65°


def test_ground_truth_has_input_shape_and_reference_appearance(small_set: Path) -> None:
    meta = synthetic.load_meta(small_set)
    x_name, y_name = "x0001.png", "y0000.png"
    gt = synthetic.ground_truth(small_set, x_name, y_name)
    assert gt.dtype == np.float32 and gt.shape == (32, 32, 3) and 0 <= gt.min() and gt.max() <= 1
    x_mask = np.asarray(Image.open(small_set / "testA_mask" / x_name)) > 0
    np.testing.assert_array_equal(synthetic.ground_truth_mask(small_set, x_name), x_mask)
    y = np.asarray(Image.open(small_set / "testB" / y_name)) / 255.0
    y_shape = KneeShape(**meta["images"]["testB"][y_name]["shape"])
    x_shape = KneeShape(**meta["images"]["testA"][x_name]["shape"])
    # Background: identical wherever neither knee covers the pixel (it depends on appearance only).
    both_bg = (geometry(y_shape, 32).coverage == 0) & (geometry(x_shape, 32).coverage == 0)
    assert both_bg.sum() > 50
    np.testing.assert_array_equal(gt[both_bg], y[both_bg].astype(np.float32))
    # Foreground: the reference's skin colour, on the input's silhouette.
    y_mask = np.asarray(Image.open(small_set / "testB_mask" / y_name)) > 0
    assert _delta_e(gt[x_mask].mean(0), y[y_mask].mean(0)) < 6.0
    # The same appearance with the reference's own shape reproduces the reference file exactly.
    app = synthetic.appearance_from_meta(meta["images"]["testB"][y_name]["appearance"])
    np.testing.assert_array_equal(render_y(y_shape, app, 32), np.asarray(Image.open(small_set / "testB" / y_name)))


def test_ground_truth_bad_names(small_set: Path, tmp_path: Path) -> None:
    with pytest.raises(HistganError, match="x9999.png"):
        synthetic.ground_truth(small_set, "x9999.png", "y0000.png")
    with pytest.raises(HistganError, match="meta.json"):
        synthetic.ground_truth(tmp_path, "x0000.png", "y0000.png")


def test_interrupted_write_completes_cleanly(small_set: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "resumed"
    real, calls = synthetic.atomic_save_png, []

    def crash_after_five(path, array):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(path)
        real(path, array)

    monkeypatch.setattr(synthetic, "atomic_save_png", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        synthetic.write_dataset(out, seed=0, **SMALL)
    monkeypatch.setattr(synthetic, "atomic_save_png", real)
    assert json.loads((out / "meta.json").read_text())["complete"] is False
    (out / "trainA" / ".x0001.png.abc123.png.tmp").write_bytes(b"half a file")  # as if killed by SIGKILL
    synthetic.write_dataset(out, seed=0, **SMALL)
    assert _files(out) == _files(small_set)  # complete, byte-identical, no duplicates or temporaries


def test_a_set_written_under_the_modules_former_name_is_completed(small_set: Path, tmp_path: Path) -> None:
    """A folder whose meta.json names the generator by its name before the layout split
    (``histgan.synthetic``) is the same set: rerunning completes it, byte-identical, and refreshes the
    name; a foreign generator's folder is refused with its name."""
    import shutil

    out = tmp_path / "old"
    shutil.copytree(small_set, out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "generator": "histgan.synthetic"}))
    (out / "trainA" / "x0001.png").unlink()
    synthetic.write_dataset(out, seed=0, **SMALL)
    assert _files(out) == _files(small_set)
    (out / "meta.json").write_text(json.dumps({**meta, "generator": "somebody.else"}))
    with pytest.raises(HistganError, match="'somebody.else'"):
        synthetic.write_dataset(out, seed=0, **SMALL)


def test_rerun_with_other_parameters_is_refused(small_set: Path, tmp_path: Path) -> None:
    with pytest.raises(HistganError, match="other parameters"):
        synthetic.write_dataset(small_set, seed=5, **SMALL)
    (tmp_path / "file").write_text("x")
    with pytest.raises(HistganError, match="not a folder"):
        synthetic.write_dataset(tmp_path / "file", **SMALL)
    with pytest.raises(ValueError, match="size"):
        synthetic.write_dataset(tmp_path / "a", size=8, progress=False)
    with pytest.raises(ValueError, match="n_train"):
        synthetic.write_dataset(tmp_path / "b", n_train=(1, 2, 3), progress=False)


def test_presets() -> None:
    import inspect

    paper = synthetic.PRESETS["paper"]
    # The paper's protocol: every test input with every test reference, its Table 2's 784 pairs.
    assert paper.n_test[0] * paper.n_test[1] == 784 and paper.size == 256 and sum(paper.n_train) == 438 + 477
    defaults = inspect.signature(synthetic.write_dataset).parameters  # "cpu" is the writer's default
    assert synthetic.SynthPreset(*(defaults[k].default for k in ("size", "n_train", "n_test"))) == synthetic.PRESETS["cpu"]
    sizes = {name: p.size ** 2 * (sum(p.n_train) + sum(p.n_test)) for name, p in synthetic.PRESETS.items()}
    assert sorted(sizes, key=sizes.get) == ["quick", "cpu", "paper"]  # quick (tests) is the smallest


def test_contact_sheet() -> None:
    sheet = synthetic.contact_sheet(n=3, size=16)
    assert sheet.shape == (4 * 18 + 2, 3 * 18 + 2, 3) and 0 <= sheet.min() and sheet.max() <= 1


def test_cli_synth(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["data", "synth", "--out", str(out), "--preset", "quick", "--size", "24", "--n-train", "2", "3",
            "--n-test", "1", "--seed", "4", "--no-progress"]
    assert cli.main(argv) == 0
    assert str(out) in capsys.readouterr().out
    meta = synthetic.load_meta(out)
    assert (meta["size"], meta["seed"]) == (24, 4)
    assert meta["counts"] == {"trainA": 2, "trainB": 3, "testA": 1, "testB": 1}
    assert cli.main(argv[:-2] + ["5", "--no-progress"]) == 2  # other seed into the same folder
    assert "other parameters" in capsys.readouterr().err
    assert cli.main(["data", "synth", "--out", str(tmp_path / "x"), "--n-test", "1", "2", "3"]) == 2


def test_cli_synth_domain(tmp_path: Path, capsys) -> None:
    out = tmp_path / "photo"
    argv = ["data", "synth", "--out", str(out), "--size", "16", "--n-train", "1", "--n-test", "1", "--no-progress"]
    assert cli.main(argv + ["--domain", "plain"]) == 0
    assert synthetic.load_meta(out)["domain"] == "plain"
    assert cli.main(argv) == 2  # the default is photo: refused on a plain folder
    assert "'plain' domain, not 'photo'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + ["--domain", "real"])
    assert exc.value.code == 2 and "invalid choice: 'real'" in capsys.readouterr().err


def test_cli_synth_help_explains_every_option(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["data", "synth", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--preset", "--size", "--n-train", "--n-test", "--seed", "--domain", "--no-progress"):
        assert option in text
    assert "paper = 256px, 438/477 train, 28/28 test" in " ".join(text.split())
