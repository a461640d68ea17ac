"""Tests for histgan.metrics: ΔE against colour-science's documented values, JIS grades, SSIM, PSNR, IoU."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from histgan import metrics as M
from histgan import colour_difference as CD
from histgan.colour_difference import lab_from_unit_rgb
from histgan.srgb import linear_to_srgb, srgb_to_linear

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour


def _rand(n=2, h=16, w=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g, dtype=dtype) * 2 - 1


# ---- colour conversion ---------------------------------------------------------------------------
def test_srgb_to_xyz_documented_value():
    # colour-science's documented example of sRGB_to_XYZ; our Lab must equal XYZ_to_Lab of it.
    rgb = np.array([0.70573936, 0.19248266, 0.22354169])
    xyz = colour.sRGB_to_XYZ(rgb)
    np.testing.assert_allclose(xyz, [0.2065429, 0.1219794, 0.0513714], atol=1e-6)
    lab = CD.rgb_to_lab(rgb.reshape(3, 1, 1), value_range=(0, 1)).ravel()
    np.testing.assert_allclose(lab, colour.XYZ_to_Lab(xyz), atol=1e-4)
    assert 0 < lab[0] < 100  # L* on the 0..100 scale, not colour-science's domain-1 scale


def test_rgb_to_lab_matches_colour_science_everywhere():
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    x[0, :, 0, :4] = torch.tensor([0.0, 0.01, 0.04045, 1.0])  # both sides of every kink
    ours = CD.rgb_to_lab(x, value_range=(0, 1)).permute(0, 2, 3, 1).numpy()
    ref = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(x.permute(0, 2, 3, 1).numpy()))
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    ours32 = CD.rgb_to_lab(x.float(), value_range=(0, 1)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours32, ref, atol=2e-3)


def test_srgb_curve_matches_colour_science_for_arrays_and_tensors():
    u = np.concatenate([np.linspace(0, 1, 1001), [0.040449936, 0.04045, 0.0031308]])
    decoded, encoded = colour.models.eotf_sRGB(u), colour.models.eotf_inverse_sRGB(u)  # independent implementation
    np.testing.assert_allclose(srgb_to_linear(u), decoded, rtol=0, atol=1e-12)
    np.testing.assert_allclose(linear_to_srgb(u), encoded, rtol=0, atol=1e-12)
    t = torch.from_numpy(u)
    np.testing.assert_allclose(srgb_to_linear(t).numpy(), srgb_to_linear(u), rtol=1e-15)  # one curve, either type
    np.testing.assert_allclose(linear_to_srgb(t).numpy(), linear_to_srgb(u), rtol=1e-15)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(u)), u, atol=1e-12)
    assert srgb_to_linear(np.float32(0.5)).dtype == np.float64  # arrays are decoded in float64
    np.testing.assert_allclose(linear_to_srgb(np.array([-0.5, 1.5])), [0.0, 1.0], atol=1e-15)  # clipped first


def test_lab_from_unit_rgb_matches_colour_science_and_has_gradients():
    u = (_rand(2, 3, 6) + 1) / 2
    expected = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(u.permute(0, 2, 3, 1).numpy()))  # independent, float64
    assert np.abs(lab_from_unit_rgb(u).permute(0, 2, 3, 1).numpy() - expected).max() < 1e-9
    assert torch.equal(lab_from_unit_rgb(u), CD.rgb_to_lab(u, value_range=(0, 1)))
    dark = torch.full((1, 3, 2, 2), 0.0005, dtype=torch.float64)  # both linear segments (sRGB and CIE f)
    for probe in (u[:1, :, :2, :2], dark):
        assert torch.autograd.gradcheck(lab_from_unit_rgb, (probe.clone().requires_grad_(True),))
    grad = torch.zeros(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)  # black: the power branches unused
    lab_from_unit_rgb(grad).sum().backward()
    assert torch.isfinite(grad.grad).all()


def test_lab_to_rgb_inverts_rgb_to_lab():
    x = _rand()
    np.testing.assert_allclose(CD.lab_to_rgb(CD.rgb_to_lab(x)), x, atol=1e-9)


def test_rgb_to_lab_array_in_array_out():
    x = np.random.default_rng(0).random((3, 4, 4))
    lab = CD.rgb_to_lab(x, value_range=(0, 1))
    assert isinstance(lab, np.ndarray) and lab.shape == (3, 4, 4)


# ---- ΔE --------------------------------------------------------------------------------------------
def test_delta_e_lab_documented_values():
    # colour-science's docstring examples of delta_E_CIE1976 and delta_E_CIE2000
    a = np.array([[100.00000000, 21.57210357, 272.22819350]])
    b = np.array([[100.00000000, 426.67945353, 72.39590835]])
    assert CD.delta_e_lab(a, b, "cie1976")[0] == pytest.approx(451.7133019, abs=1e-4)
    assert CD.delta_e_lab(a, b, "cie2000")[0] == pytest.approx(94.0356490, abs=1e-4)
    # the rounded inputs
    assert CD.delta_e_lab([100, 21.57, 272.23], [100, 426.68, 72.40])[0] == pytest.approx(451.713, abs=5e-3)


def test_delta_e_equals_euclidean_distance_of_mean_lab():
    a, b = _rand(seed=1), _rand(seed=2)
    la = CD.rgb_to_lab(a).mean(dim=(2, 3)).numpy()
    lb = CD.rgb_to_lab(b).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(CD.delta_e(a, b), np.linalg.norm(la - lb, axis=1), rtol=1e-10)
    np.testing.assert_allclose(CD.delta_e(a, b, method="cie2000"),
                               colour.delta_E(la, lb, method="CIE 2000"), rtol=1e-10)


def test_delta_e_identical_is_zero_and_shape():
    a = _rand(n=3)
    out = CD.delta_e(a, a)
    assert out.shape == (3,) and np.all(out == 0)
    assert CD.delta_e(a[0], a[0]).shape == (1,)


def test_delta_e_masks_equal_selecting_pixels():
    a, b = _rand(n=1, seed=3), _rand(n=1, seed=4)
    ma = torch.zeros(1, 1, 16, 16)
    ma[..., :5, :] = 1
    mb = torch.zeros(1, 1, 16, 16)
    mb[..., :, 10:] = 3.0  # any non-zero value is foreground
    sel_a = a[..., :5, :].reshape(1, 3, 1, -1)
    sel_b = b[..., :, 10:].reshape(1, 3, 1, -1)
    assert CD.delta_e(a, b, ma, mb)[0] == pytest.approx(CD.delta_e(sel_a, sel_b)[0], rel=1e-12)
    assert CD.delta_e(a, b, ma, mb)[0] != pytest.approx(CD.delta_e(a, b)[0], rel=1e-3)


def test_value_range_minus1_1_and_0_1_agree():
    a, b = _rand(seed=5), _rand(seed=6)
    np.testing.assert_allclose(CD.delta_e(a, b), CD.delta_e((a + 1) / 2, (b + 1) / 2, value_range=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(CD.delta_e(a.numpy(), b.numpy()), CD.delta_e(a, b), rtol=1e-12)


def test_reference_broadcasts():
    a, b = _rand(n=3, seed=7), _rand(n=1, seed=8)
    np.testing.assert_allclose(CD.delta_e(a, b), CD.delta_e(a, b.expand(3, -1, -1, -1)), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"value_range": (0, 1)}, "outside value_range"),
    ({"value_range": (1, 0)}, "low < high"),
    ({"method": "CIE 2000"}, "method"),
    ({"generated_mask": torch.zeros(2, 1, 16, 16)}, "selects no pixel"),
    ({"generated_mask": torch.ones(2, 1, 8, 8)}, "generated_mask"),
])
def test_delta_e_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CD.delta_e(_rand(), _rand(seed=1), **kwargs)


def test_delta_e_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        CD.delta_e(torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="tensor or numpy"):
        CD.delta_e([[0.0]], [[0.0]])


# ---- JIS grades ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, grade", [
    (0.0, "AA"), (1.5999, "AA"), (1.6, "A"), (3.1999, "A"), (3.2, "B"), (6.4999, "B"), (6.5, "C"),
    (12.9999, "C"), (13.0, "D"), (24.9999, "D"), (25.0, "beyond D"), (1e6, "beyond D"),
])
def test_jis_grade_boundaries(value, grade):
    assert CD.jis_grade(value) == grade


def test_jis_grade_vectorised_and_table():
    out = CD.jis_grade(np.array([0.5, 5.0, 30.0]))
    assert list(out) == ["AA", "B", "beyond D"]
    assert [g.grade for g in CD.JIS_TABLE] == ["AA", "A", "B", "C", "D", "beyond D"]
    for lo, hi in zip(CD.JIS_TABLE, CD.JIS_TABLE[1:]):
        assert lo.high == hi.low  # contiguous
    assert CD.jis_grade(4.6) == "B" and CD.jis_grade(14.1) == "D"  # the paper's Table 2 readings


@pytest.mark.parametrize("bad", [-0.1, float("nan"), [1.0, -1.0]])
def test_jis_grade_rejects(bad):
    with pytest.raises(ValueError, match="non-negative"):
        CD.jis_grade(bad)


# ---- SSIM, PSNR ----------------------------------------------------------------------------------
def test_ssim_self_is_one_and_drops_with_noise():
    a = _rand(h=32, w=32)
    for ch in ("luminance", "rgb"):
        np.testing.assert_allclose(M.ssim(a, a, channels=ch), 1.0, atol=1e-12)
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    assert np.all(M.ssim(a, noisy) < 0.9)


def test_ssim_matches_direct_formula_on_constant_images():
    # constant images: σ = 0, so SSIM = (2 μa μb + C1) / (μa² + μb² + C1) exactly
    a = torch.full((1, 1, 16, 16), 0.2, dtype=torch.float64)
    b = torch.full((1, 1, 16, 16), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    assert M.ssim_unit(a, b)[0] == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-9)


def test_ssim_mask_selects_region():
    a = _rand(n=1, h=32, w=32)
    b = a.clone()
    b[..., :, 16:] = -b[..., :, 16:]  # right half changed
    left = torch.zeros(1, 1, 32, 32)
    left[..., :, :8] = 1  # far from the change, beyond the window's reach
    assert M.ssim(a, b, left)[0] == pytest.approx(1.0, abs=1e-9)
    assert M.ssim(a, b)[0] < 0.9
    assert np.isnan(M.ssim(a, b, torch.zeros(1, 1, 32, 32))[0])


def test_ssim_bad_channels_and_small_images():
    with pytest.raises(ValueError, match="channels"):
        M.ssim(_rand(h=16, w=16), _rand(h=16, w=16), channels="hsv")
    with pytest.raises(ValueError, match="window"):
        M.ssim(_rand(h=8, w=8), _rand(h=8, w=8))


def test_psnr_known_value():
    a = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    b = a + 0.2  # [-1,1] → 0.1 on [0,1]: MSE = 0.01, PSNR = 20 dB
    assert M.psnr(a, b)[0] == pytest.approx(20.0, abs=1e-9)
    assert M.psnr(a, a)[0] == np.inf


# ---- segmentation IoU ------------------------------------------------------------------------------
def _two_tone(fg_rgb, bg_rgb, mask):
    fg = torch.tensor(fg_rgb, dtype=torch.float64).view(1, 3, 1, 1)
    bg = torch.tensor(bg_rgb, dtype=torch.float64).view(1, 3, 1, 1)
    return torch.where(mask.bool(), fg, bg)


def test_foreground_iou_analytic():
    ref_mask = torch.zeros(1, 1, 16, 16)
    ref_mask[..., 4:12, 4:12] = 1
    ref = _two_tone([0.6, 0.2, 0.1], [-0.8, -0.8, 0.9], ref_mask)
    target = torch.zeros(1, 1, 16, 16)
    target[..., 0:8, 0:16] = 1  # 128 px
    out_mask = torch.zeros(1, 1, 16, 16)
    out_mask[..., 0:8, 0:8] = 1  # 64 px, all inside the target
    out = _two_tone([0.5, 0.25, 0.1], [-0.7, -0.8, 0.8], out_mask)
    assert M.foreground_iou(out, ref, ref_mask, target)[0] == pytest.approx(0.5)
    assert M.foreground_iou(out, ref, ref_mask, out_mask)[0] == pytest.approx(1.0)
    assert np.isnan(M.foreground_iou(out, ref, torch.ones_like(ref_mask), target)[0])  # no background


# ---- foreground shape fidelity against the truth ----------------------------------------------------
def _light_and_mask(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64)
    light = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    mask = torch.zeros(n, 1, size, size, dtype=torch.float64)
    mask[:, :, 6:26, 9:22] = 1
    return light, mask


def test_composite_puts_the_truth_background_exactly_outside_the_mask():
    out, mask = _light_and_mask(0)
    gt, _ = _light_and_mask(1)
    c = M.composite(out, gt, mask)
    assert torch.equal(c[mask.expand_as(c) == 0], gt[mask.expand_as(gt) == 0])
    assert torch.equal(c[mask.expand_as(c) != 0], out[mask.expand_as(out) != 0])
    with pytest.raises(ValueError, match="share"):
        M.composite(out, gt[:1], mask)


@pytest.mark.parametrize("sigma", [None, 1.5])
def test_foreground_ssim_ignores_pixels_outside_the_mask(sigma):
    out, mask = _light_and_mask(0)
    gt, _ = _light_and_mask(1)
    base = M.foreground_ssim(out, gt, mask, sigma)
    changed = torch.where(mask != 0, out, torch.rand_like(out))  # anything at all outside the mask
    np.testing.assert_array_equal(M.foreground_ssim(changed, gt, mask, sigma), base)
    assert np.all(base < 1)
    np.testing.assert_allclose(M.foreground_ssim(gt, gt, mask, sigma), 1.0, atol=1e-12)  # the truth scores 1


def test_foreground_ssim_sees_foreground_changes_and_lowpass_forgives_fine_texture():
    gt, mask = _light_and_mask(1)
    g = torch.Generator().manual_seed(2)
    texture = 0.2 * (torch.rand(gt.shape, generator=g, dtype=torch.float64) - 0.5)  # pixel-scale noise
    plain = M.foreground_ssim(gt + texture, gt, mask)
    smooth = M.foreground_ssim(gt + texture, gt, mask, sigma=1.5)
    assert np.all(plain < 0.95) and np.all(smooth > plain + 0.02), (plain, smooth)


def test_whole_image_ssim_is_hurt_by_a_background_the_foreground_score_ignores():
    gt, mask = _light_and_mask(1)
    other_bg = torch.where(mask != 0, gt, 1 - gt)  # perfect foreground, wrong background
    assert np.all(M.ssim_unit(other_bg, gt) < 0.9)
    np.testing.assert_allclose(M.foreground_ssim(other_bg, gt, mask), 1.0, atol=1e-12)


def test_lowpass_sigma_scales_with_size_and_blur_keeps_constants():
    assert M.lowpass_sigma(64) == 1.5 and M.lowpass_sigma(256) == 6.0 and M.lowpass_sigma(32) == 0.75
    const = torch.full((1, 1, 20, 20), 0.3, dtype=torch.float64)
    np.testing.assert_allclose(M.gaussian_lowpass(const, 2.0), const, atol=1e-12)
    impulse = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    impulse[..., 10, 10] = 1
    blurred = M.gaussian_lowpass(impulse, 1.5)
    assert blurred.sum().item() == pytest.approx(1.0) and blurred[..., 10, 10] == blurred.max()
    with pytest.raises(ValueError, match="sigma"):
        M.gaussian_lowpass(const, 0.0)


def test_stripe_energy_analytic_cases():
    """Pure stripes put all energy on one axis; white noise spreads it evenly over the H·W − 1
    non-DC frequencies, so the two axes (H + W − 2 of them) hold (H + W − 2) / (H·W − 1) of it."""
    from histgan.metrics import stripe_energy

    x = torch.zeros(3, 3, 32, 32)
    x[0, :, :, ::4] = 1.0  # vertical stripes
    x[1, :, 5:9, :] = 1.0  # one horizontal band: varies along y only
    x[2, :, 10:20, 10:20] = 1.0  # a square: energy off the axes too
    s = stripe_energy(x)
    assert s[0] == pytest.approx(1.0) and s[1] == pytest.approx(1.0)
    assert 0.2 < s[2] < 0.9
    noise = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert stripe_energy(noise).mean() == pytest.approx(62 / 1023, rel=0.05)
    assert stripe_energy(x.transpose(-1, -2)) == pytest.approx(s)  # the same for the other axis
    with pytest.raises(ValueError, match="N, C, H, W"):
        stripe_energy(torch.zeros(3, 8, 8))


def test_edge_band_and_edge_excess_analytic_cases():
    """An 8 × 8 square mask, width 2: the band is its outer two rings (64 − 16 = 48 pixels), the interior the
    4 × 4 core; a mask against the image's border has no edge there. Edge excess: 0 for an output off by
    the same colour everywhere, exactly ‖c‖ for one off by ``c`` in L*a*b* only along the band."""
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    band, inner = M.edge_band(mask, 2)
    assert int(band.sum()) == 48 and int(inner.sum()) == 16 and torch.equal(inner[0, 0, 6:10, 6:10], torch.ones(4, 4))
    assert torch.equal(band + inner, mask)
    left = torch.zeros(1, 1, 16, 16)
    left[..., :, :8] = 1  # a half image: only the right-hand side is an edge
    band, _ = M.edge_band(left, 1)
    assert torch.equal(band[0, 0].sum(0), torch.tensor([0.0] * 7 + [16.0] + [0.0] * 8))
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64) * 50
    masks = mask.expand(2, -1, -1, -1)
    shift = torch.tensor([3.0, -4.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    np.testing.assert_allclose(M.edge_excess(gt + shift, gt, masks), 0.0, atol=1e-9)
    band, _ = M.edge_band(masks, 2)
    np.testing.assert_allclose(M.edge_excess(gt + shift * band, gt, masks), 5.0, rtol=1e-9)
    assert np.isnan(M.edge_excess(gt[:1], gt[:1], torch.ones(1, 1, 16, 16))).all()  # no edge: no band
    with pytest.raises(ValueError, match="width"):
        M.edge_band(mask, 0)
