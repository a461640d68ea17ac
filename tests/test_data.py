"""Tests of folder loading (histgan.data.folders, histgan.data.image_files): modes, masks, sampling, round trip, every bad input."""

from __future__ import annotations

import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from histgan.data import synthetic
from histgan.data.folders import UnpairedImageFolder, load_domain
from histgan.data.image_files import list_images, load_image, load_mask, threshold_mask
from histgan.errors import HistganError


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "set", size=32, n_train=(3, 5),
                                   n_test=(2, 2), seed=0, progress=False)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _png_bytes(width: int, height: int) -> bytes:
    """A valid-looking grey 8-bit PNG header claiming ``width × height`` pixels, with a tiny body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


# ---- round trip ---------------------------------------------------------------------------------
def test_load_domain_round_trips_the_synthetic_set(synth: Path) -> None:
    x, m, names = load_domain(synth, "testB")
    assert names == ["y0000.png", "y0001.png"] and x.shape == (2, 3, 32, 32) and m.shape == (2, 1, 32, 32)
    for k, name in enumerate(names):
        png = torch.from_numpy(np.asarray(Image.open(synth / "testB" / name), dtype=np.float32)).permute(2, 0, 1)
        torch.testing.assert_close(x[k], png / 255 * 2 - 1, rtol=0, atol=1e-6)
        mask = torch.from_numpy(np.asarray(Image.open(synth / "testB_mask" / name)) > 0).float()[None]
        assert torch.equal(m[k], mask)
    assert set(m.unique().tolist()) == {0.0, 1.0}


def test_unpaired_folder_items(synth: Path) -> None:
    ds = UnpairedImageFolder(synth, "train")
    assert len(ds) == 5  # max(|A|, |B|)
    item = ds[4]
    assert set(item) == {"x", "y", "x_mask", "y_mask", "x_name", "y_name"}
    assert item["x"].shape == item["y"].shape == (3, 32, 32) and item["x_mask"].shape == (1, 32, 32)
    assert item["x_name"] == "x0001.png"  # 4 mod 3
    assert -1 <= item["y"].min() and item["y"].max() <= 1
    torch.testing.assert_close(item["x_mask"], load_mask(synth / "trainA_mask" / "x0001.png"))


def test_pairing_is_deterministic_and_varies_by_epoch_and_seed(synth: Path) -> None:
    a, b = UnpairedImageFolder(synth), UnpairedImageFolder(synth)
    pairs = [a.pair(i) for i in range(len(a))]
    assert pairs == [b.pair(i) for i in range(len(b))]
    assert sorted(j for _, j in pairs) == list(range(5))  # every B once per epoch
    epochs = {tuple(a.pair(i)[1] for i in range(5)) for a.epoch in range(6)}
    assert len(epochs) > 1
    a.set_epoch(0)
    assert [a.pair(i) for i in range(5)] == pairs
    c = UnpairedImageFolder(synth, seed=1)
    assert any(tuple(c.pair(i)[1] for i in range(5)) != tuple(p[1] for p in pairs) for c.epoch in range(3))
    assert torch.equal(a[2]["y"], b[2]["y"])


def test_flip_flips_image_and_mask_together(synth: Path) -> None:
    ds = UnpairedImageFolder(synth, flip=True)
    flipped = 0
    for ds.epoch in range(4):
        for i in range(len(ds)):
            item = ds[i]
            ref = load_image(synth / "trainA" / item["x_name"])
            ref_m = load_mask(synth / "trainA_mask" / item["x_name"])
            if not torch.equal(item["x"], ref):
                assert torch.equal(item["x"], ref.flip(-1)) and torch.equal(item["x_mask"], ref_m.flip(-1))
                flipped += 1
    assert 0 < flipped < 4 * len(ds)


def test_dataloader_batches(synth: Path) -> None:
    batch = next(iter(torch.utils.data.DataLoader(UnpairedImageFolder(synth, size=16), batch_size=4)))
    assert batch["x"].shape == (4, 3, 16, 16) and batch["y_mask"].shape == (4, 1, 16, 16)
    assert len(batch["y_name"]) == 4


# ---- modes, formats, resize ---------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "webp"])
def test_formats(tmp_path: Path, ext: str) -> None:
    arr = np.zeros((8, 8, 3), np.uint8)
    arr[..., 0] = 255
    Image.fromarray(arr).save(tmp_path / f"a.{ext}", **({"quality": 100} if ext in ("jpg", "webp") else {}))
    x = load_image(tmp_path / f"a.{ext}")
    torch.testing.assert_close(x.mean(dim=(1, 2)), torch.tensor([1.0, -1.0, -1.0]), atol=0.03, rtol=0)


def test_modes_convert_correctly(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    x = load_image(tmp_path / "l.png")
    assert x.shape == (3, 8, 8) and torch.equal(x[0], x[2])
    torch.testing.assert_close(x[1], torch.from_numpy(grey / 255 * 2 - 1).float())
    rgb = Image.fromarray(np.dstack([grey, 255 - grey, grey // 2]).astype(np.uint8))
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    pal = load_image(tmp_path / "p.png")
    assert (pal - load_image_from(rgb)).abs().max() < 0.1  # palette expanded, not index values
    sixteen = np.full((4, 4), 32768, np.uint16)  # half of 16-bit full scale
    Image.fromarray(sixteen).save(tmp_path / "i16.png")
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")
    torch.testing.assert_close(load_image(tmp_path / "i16.png"), torch.full((3, 4, 4), 32768 / 65535 * 2 - 1))
    Image.fromarray(np.dstack([grey, grey, grey, grey]).astype(np.uint8), "RGBA").save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png").shape == (3, 8, 8)
    Image.fromarray(grey > 100).save(tmp_path / "one.png")
    assert set(load_image(tmp_path / "one.png").unique().tolist()) == {-1.0, 1.0}


def load_image_from(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255 * 2 - 1).permute(2, 0, 1)


def test_resize(tmp_path: Path) -> None:
    Image.new("RGB", (40, 24), (255, 0, 128)).save(tmp_path / "c.png")
    x = load_image(tmp_path / "c.png", size=16)
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x[:, 5, 5], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]), atol=1e-5, rtol=0)
    m = np.zeros((32, 32), np.uint8)
    m[:, :16] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", size=8)
    assert torch.equal(mask[0, :, :4], torch.ones(8, 4)) and torch.equal(mask[0, :, 4:], torch.zeros(8, 4))
    with pytest.raises(ValueError, match="size"):
        load_image(tmp_path / "c.png", size=0)


# ---- masks --------------------------------------------------------------------------------------
def test_mask_fallbacks(synth: Path, tmp_path: Path) -> None:
    root = tmp_path / "alpha"
    for d in "AB":
        (root / f"train{d}").mkdir(parents=True)
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[..., :3], rgba[2:6, 2:6, 3] = 200, 255
        Image.fromarray(rgba, "RGBA").save(root / f"train{d}" / "a.png")
    item = UnpairedImageFolder(root)[0]
    assert item["x_mask"].sum() == 16 and item["x_mask"][0, 3, 3] == 1  # alpha
    assert UnpairedImageFolder(root, masks="ones")[0]["x_mask"].sum() == 64
    (root / "trainA_mask").mkdir()
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "trainA_mask" / "a.png")
    assert UnpairedImageFolder(root)[0]["x_mask"].sum() == 64  # the mask folder wins over alpha
    with pytest.raises(ValueError, match="masks"):
        UnpairedImageFolder(root, masks="alpha")


def test_threshold_mask_finds_the_x_knee(synth: Path) -> None:
    ds = UnpairedImageFolder(synth, masks="threshold")
    auto = UnpairedImageFolder(synth)
    for i in range(3):  # IoU vs. the true masks: measured 0.947–0.961 at 32², min 0.968 over 100 at 64²
        m, ref = ds[i]["x_mask"].bool(), auto[i]["x_mask"].bool()
        assert (m & ref).sum() / (m | ref).sum() > 0.93
    flat = torch.full((3, 8, 8), -0.9)
    flat[:, 3:5, 3:5] = 0.5
    assert threshold_mask(flat).sum() == 4


# ---- bad inputs ---------------------------------------------------------------------------------
def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(HistganError, match="trainA"):
        UnpairedImageFolder(tmp_path)
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainA" / "notes.txt").write_text("no images here")
    with pytest.raises(HistganError, match="no images"):
        list_images(tmp_path / "trainA")


@pytest.mark.parametrize("kind", ["zero-byte", "corrupt", "truncated", "bomb"])
def test_bad_files_raise_naming_the_file(synth: Path, tmp_path: Path, kind: str) -> None:
    root = _copy(synth, tmp_path / "set")
    bad = root / "trainB" / "y0002.png"
    if kind == "zero-byte":
        bad.write_bytes(b"")
    elif kind == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif kind == "truncated":
        bad.write_bytes(bad.read_bytes()[:-60])
    else:
        bad.write_bytes(_png_bytes(200_000, 200_000))  # 4·10¹⁰ pixels: Pillow's bomb guard
    with pytest.raises(HistganError, match="y0002.png"):
        load_image(bad)
    with pytest.raises(HistganError, match="y0002.png"):
        load_domain(root, "trainB")
    ds = UnpairedImageFolder(root)
    with pytest.raises(HistganError, match="y0002.png"):
        for i in range(len(ds)):
            ds[i]
    with pytest.warns(UserWarning) as record:
        ds = UnpairedImageFolder(root, skip_bad=True)
    messages = [str(w.message) for w in record]
    assert any("y0002.png" in msg for msg in messages) and any("skipped 1 bad file(s) of 8" in msg for msg in messages)
    assert len(ds) == 4 and "y0002.png" not in {ds[i]["y_name"] for i in range(len(ds))}


def test_mask_size_mismatch_and_missing_mask(synth: Path, tmp_path: Path) -> None:
    root = _copy(synth, tmp_path / "set")
    Image.new("L", (16, 32), 255).save(root / "trainA_mask" / "x0001.png")
    with pytest.raises(HistganError, match="x0001.png.*16x32.*32x32"):
        UnpairedImageFolder(root, size=16)[1]
    (root / "trainA_mask" / "x0002.png").unlink()
    with pytest.raises(HistganError, match="no mask for .*x0002.png"):
        UnpairedImageFolder(root)[2]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = UnpairedImageFolder(root, skip_bad=True)
    assert len(ds) == 5 and [p.name for p in ds.files["A"]] == ["x0000.png"]
    assert sum("skipped 2 bad file(s)" in str(w.message) for w in record) == 1


def test_error_in_a_dataloader_worker_names_the_file(synth: Path, tmp_path: Path) -> None:
    root = _copy(synth, tmp_path / "set")
    (root / "trainA" / "x0000.png").write_bytes(b"")
    loader = torch.utils.data.DataLoader(UnpairedImageFolder(root), batch_size=2, num_workers=1)
    with pytest.raises(HistganError, match="x0000.png"):
        next(iter(loader))


def test_recolour_turns_chroma_keeps_luma_and_background() -> None:
    """Analytic: a grey pixel has no chroma to turn; a turn by θ then by −θ is the identity (no
    clipping); luma Y = 0.299 R + 0.587 G + 0.114 B is unchanged; chroma scales by the factor; pixels
    outside the mask are untouched."""
    from histgan.data.folders import recolour

    g = torch.Generator().manual_seed(0)
    img = (torch.rand(3, 6, 6, generator=g, dtype=torch.float64) * 0.6 - 0.3)  # well inside [-1, 1]
    img[:, 0, 0] = 0.25  # grey
    mask = torch.ones(1, 6, 6, dtype=torch.float64)
    mask[..., 5] = 0
    out = recolour(img, mask, 20.0, 1.3)
    assert torch.equal(out[..., 5], img[..., 5]), "background untouched"
    assert torch.allclose(out[:, 0, 0], img[:, 0, 0], atol=1e-12), "grey has no hue"
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    assert torch.allclose(torch.einsum("c,chw->hw", luma, out), torch.einsum("c,chw->hw", luma, img), atol=1e-12)
    scale = torch.tensor([1 / 1.402, 1 / 1.772], dtype=torch.float64)[:, None, None]
    chroma = lambda v: (v - torch.einsum("c,chw->hw", luma, v)[None])[[0, 2]] * scale  # (Cr, Cb)  # noqa: E731
    ratio = chroma(out)[..., :5].norm(dim=0) / chroma(img)[..., :5].norm(dim=0).clamp_min(1e-12)
    assert torch.allclose(ratio[1:], torch.full_like(ratio[1:], 1.3), atol=1e-9)
    back = recolour(recolour(img, mask, 20.0, 1.0), mask, -20.0, 1.0)
    assert torch.allclose(back, img, atol=1e-12)
    assert torch.allclose(recolour(img, mask, 0.0, 1.0), img, atol=1e-12)


def test_recolour_augmentation_is_seeded_and_touches_only_y(synth: Path) -> None:
    plain = UnpairedImageFolder(synth)
    aug = UnpairedImageFolder(synth, recolour_hue=15.0, recolour_chroma=1.4)
    again = UnpairedImageFolder(synth, recolour_hue=15.0, recolour_chroma=1.4)
    changed = 0
    for i in range(len(plain)):
        a, b, c = plain[i], aug[i], again[i]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y_mask"], b["y_mask"])
        assert torch.equal(b["y"], c["y"]), "the same (seed, epoch, index) gives the same colours"
        bg = b["y_mask"][0] == 0
        assert torch.equal(a["y"][:, bg], b["y"][:, bg])
        changed += not torch.equal(a["y"], b["y"])
    assert changed == len(plain)


def test_identity_recolouring_adds_y_idt_and_leaves_y(synth: Path) -> None:
    """``identity_hue``/``identity_chroma`` add ``y_idt``: ``y``'s skin recoloured (its background and
    BT.601 luma kept, its chroma changed), seeded; ``x`` and ``y`` are what they are without it."""
    from histgan.data.folders import _YCBCR

    plain = UnpairedImageFolder(synth)
    idt = UnpairedImageFolder(synth, identity_hue=20.0, identity_chroma=1.5)
    assert "y_idt" not in plain[0]
    for i in range(len(plain)):
        a, b = plain[i], idt[i]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
        assert torch.equal(b["y_idt"], UnpairedImageFolder(synth, identity_hue=20.0, identity_chroma=1.5)[i]["y_idt"])
        bg, fg = b["y_mask"][0] == 0, b["y_mask"][0] == 1
        assert torch.equal(b["y_idt"][:, bg], b["y"][:, bg]) and not torch.equal(b["y_idt"][:, fg], b["y"][:, fg])
        ycc = lambda im: torch.einsum("ij,jn->in", _YCBCR.float(), (im[:, fg] + 1) / 2)  # noqa: E731
        inside = ((b["y_idt"][:, fg].abs() < 0.999).all(0))  # pixels the clipping to [-1, 1] did not touch
        assert torch.allclose(ycc(b["y_idt"])[0, inside], ycc(b["y"])[0, inside], atol=1e-5)
