"""Tests for histgan.eval.baselines: each baseline's defining property, the background choice, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from histgan.eval import baselines as B
from histgan import metrics as M
from histgan import colour_difference as CD

H = W = 24


def _pair(seed: int = 0):
    """A grey 'simulator' input with a disc mask, a coloured 'photo' reference with a square mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    x_mask = (((yy - 12) ** 2 + (xx - 11) ** 2) < 64).float().view(1, 1, H, W)
    shade = (0.2 + 0.6 * xx / W + 0.05 * torch.rand(H, W, generator=g)).view(1, 1, H, W)
    x = (shade * 2 - 1).expand(1, 3, H, W).double() * x_mask + (-0.6) * (1 - x_mask)
    ref_mask = torch.zeros(1, 1, H, W)
    ref_mask[..., 3:20, 5:22] = 1
    skin = torch.tensor([0.75, 0.55, 0.45]).view(1, 3, 1, 1) + 0.08 * torch.randn(1, 3, H, W, generator=g)
    back = torch.tensor([0.2, 0.35, 0.3]).view(1, 3, 1, 1) + 0.03 * torch.randn(1, 3, H, W, generator=g)
    ref = (torch.where(ref_mask.bool(), skin, back).clamp(0, 1) * 2 - 1).double()
    return x, x_mask.double(), ref, ref_mask.double()


@pytest.mark.parametrize("name", list(B.BASELINES))
def test_protocol_shape_range_and_background(name):
    x, xm, ref, rm = _pair()
    out = B.BASELINES[name](x, xm, ref, rm)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    bg = (1 - xm).bool().expand_as(x)
    _, bg_lab = M.reference_means(ref, rm)
    # default background: the reference's mean background colour, everywhere outside the input's mask
    assert CD.delta_e_lab(CD.mean_lab(out, 1 - xm), bg_lab.numpy())[0] < 0.05
    kept = B.BASELINES[name](x, xm, ref, rm, background="input")
    assert torch.equal(kept[bg], x[bg])
    assert torch.equal(kept[~bg], out[~bg])  # foreground independent of the background choice


def test_flat_fill_delta_e_is_zero():
    x, xm, ref, rm = _pair()
    out = B.flat_fill(x, xm, ref, rm)
    assert CD.delta_e(out, ref, xm, rm)[0] < 1e-6
    fg = out[xm.bool().expand_as(out)].view(3, -1)
    assert torch.allclose(fg, fg[:, :1].expand_as(fg))  # one colour


def test_luminance_tint_keeps_shading_and_mean_rgb():
    x, xm, ref, rm = _pair()
    x = torch.where(xm.bool(), x * 0.2, x)  # gentle shading: nothing clips
    out = B.luminance_tint(x, xm, ref, rm)
    m = xm.bool()[0, 0]
    assert float(out.max()) < 1
    c = CD.lab_to_rgb(torch.from_numpy(CD.mean_lab(ref, rm))[:, :, None, None], value_range=(0, 1)).view(3)
    o = (out[0] + 1) / 2
    luma = (x[0, 0] + 1) / 2
    ratio = o[:, m] / luma[m]  # each channel is proportional to the input's luma
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-9)
    np.testing.assert_allclose(o[:, m].mean(dim=1), c, rtol=1e-9)  # mean RGB = the mean colour
    # mean L*a*b* is not the reference's (the Lab of a mean ≠ the mean of Lab), more so with more shading
    de_gentle = CD.delta_e(out, ref, xm, rm)[0]
    x_strong, *_ = _pair()
    de_strong = CD.delta_e(B.luminance_tint(x_strong, xm, ref, rm), ref, xm, rm)[0]
    assert 1e-4 < de_gentle < 0.1 < de_strong < 13


def test_reinhard_matches_lab_mean_and_std():
    x, xm, ref, rm = _pair()
    colourful = x.clone()
    colourful[:, 0] = (colourful[:, 0] + 0.2 * torch.sin(torch.arange(W, dtype=x.dtype) / 3)).clamp(-1, 1)
    out = B.reinhard(colourful, xm, ref, rm)
    lab_o, lab_r = CD.rgb_to_lab(out), CD.rgb_to_lab(ref)
    mo, mr = xm.bool()[0, 0], rm.bool()[0, 0]
    np.testing.assert_allclose(lab_o[0][:, mo].mean(1), lab_r[0][:, mr].mean(1), atol=0.05)
    np.testing.assert_allclose(lab_o[0][:, mo].std(1, unbiased=False), lab_r[0][:, mr].std(1, unbiased=False),
                               atol=0.05)


def test_reinhard_grey_input_gets_reference_chroma():
    x, xm, ref, rm = _pair()
    lab_o = CD.rgb_to_lab(B.reinhard(x, xm, ref, rm))[0][:, xm.bool()[0, 0]]
    mu_ref = torch.from_numpy(CD.mean_lab(ref, rm))[0]
    np.testing.assert_allclose(lab_o[1:].mean(1), mu_ref[1:], atol=0.05)
    assert float(lab_o[1:].std(1).max()) < 0.5  # no chroma variation invented from round-off


def test_histogram_matching_exact_when_counts_equal():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    ref = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    xm = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    xm[..., :4, :] = 1
    rm = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    rm[..., :, 4:] = 1  # both select 32 pixels
    out = B.histogram_matching(x, xm, ref, rm)
    for c in range(3):
        got = out[0, c][xm[0, 0].bool()]
        want = ref[0, c][rm[0, 0].bool()]
        assert torch.equal(got.sort().values, want.sort().values)  # the same multiset of values
        src = x[0, c][xm[0, 0].bool()]
        assert torch.equal(got.argsort(), src.argsort())  # order preserved (monotone map)


def test_histogram_matching_ties_stay_tied_and_histograms_agree():
    x, xm, ref, rm = _pair()
    out = B.histogram_matching(x, xm, ref, rm)
    # grey input: the three channels share one ranking; equal inputs give equal outputs
    flat = torch.where(xm.bool(), torch.zeros_like(x), x)
    out_flat = B.histogram_matching(flat, xm, ref, rm)
    fg = out_flat[xm.bool().expand_as(x)].view(3, -1)
    assert torch.allclose(fg, fg[:, :1].expand_as(fg))
    from histgan.histogram import hard_histogram

    h_out = hard_histogram(out.float(), bins=8, mask=xm.float())
    h_ref = hard_histogram(ref.float(), bins=8, mask=rm.float())
    assert float((h_out - h_ref).abs().max()) < 0.05


@pytest.mark.parametrize("name", list(B.BASELINES))
def test_bad_inputs(name):
    x, xm, ref, rm = _pair()
    with pytest.raises(ValueError, match="background"):
        B.BASELINES[name](x, xm, ref, rm, background="white")
    with pytest.raises(ValueError, match="mask"):
        B.BASELINES[name](x, xm, ref, torch.zeros_like(rm))
