"""Tests of the differentiable colour histogram, eqs (1)–(6)."""

from __future__ import annotations

import math

import pytest
import torch

from histgan.histogram import (
    default_bandwidth,
    hard_histogram,
    histogram_loss,
    soft_histogram,
    soft_histogram_reference,
    window_half_width,
)


def _images(n=2, c=3, h=12, w=10, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, h, w, generator=g, dtype=dtype) * 2 - 1)


def _mask(n=2, h=12, w=10, seed=1, p=0.6):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(n, 1, h, w, generator=g) < p).float()
    m[:, :, 0, 0] = 1.0  # never empty
    return m


# ---- equality with the reference ---------------------------------------------------------------

@pytest.mark.parametrize("bins,bandwidth", [(32, None), (256, None), (8, 0.05), (5, 1.0), (1, None), (64, 0.002)])
@pytest.mark.parametrize("masked", [False, True])
def test_soft_equals_reference_values_and_gradients(bins, bandwidth, masked):
    x = _images()
    mask = _mask() if masked else None
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    a = soft_histogram(xa, bins, bandwidth, mask)
    b = soft_histogram_reference(xb, bins, bandwidth, mask)
    assert a.shape == (2, 3, bins)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    w = torch.randn(a.shape, generator=torch.Generator().manual_seed(5))
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)


def test_large_image_uses_several_chunks_and_stays_equal(monkeypatch):
    import histgan.histogram as H

    monkeypatch.setattr(H, "_CHUNK_ELEMENTS", 1000)  # force many chunks
    x = _images(n=2, h=20, w=20)
    torch.testing.assert_close(soft_histogram(x, 16), soft_histogram_reference(x, 16), atol=1e-6, rtol=0)


@pytest.mark.parametrize("bins", [4, 64])
def test_gradcheck_float64(bins):
    x = _images(n=1, c=2, h=4, w=3, dtype=torch.float64).requires_grad_()
    mask = _mask(n=1, h=4, w=3).double()
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, bins, None, mask), (x,))
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, bins, 0.1), (x,))


def test_window_truncation_bound():
    """The window drops at most 2·exp(-W) of mass per pixel in L1 (window_half_width's docstring)."""
    W = window_half_width(torch.float32)
    assert 2 * math.exp(-W) < torch.finfo(torch.float32).eps
    # A value sitting exactly W·B above an edge: its dropped tail is σ(-W) — below the bound.
    assert torch.sigmoid(torch.tensor(-W, dtype=torch.float64)) <= math.exp(-W)
    x = _images(n=1, c=3, h=16, w=16, dtype=torch.float64)
    exact = soft_histogram_reference(x, 256)  # float64, no window
    fast = soft_histogram(x.float(), 256).double()
    assert (fast - exact).abs().sum(-1).max() <= 2 * math.exp(-W) + 256 * 1e-7  # + float32 round-off



@pytest.mark.parametrize("W", [2.0, 4.0, 8.0])
def test_window_truncation_error_bound_with_small_window(monkeypatch, W):
    """With a window of ±W bandwidths the error per pixel is ≤ exp(-W) per bin, ≤ 4·exp(-W) in L1.

    Float64 and single-pixel images, so each histogram is one pixel's kernel integrated over the
    bins and round-off (~1e-16) is far below the bound; K = 64 at B = L gives windows of 2W + 2 of
    the 65 edges, so the truncation really happens (the error is also checked to be non-zero).
    """
    import histgan.histogram as H

    monkeypatch.setattr(H, "window_half_width", lambda dtype: W)
    g = torch.Generator().manual_seed(7)
    z = torch.cat([torch.rand(300, generator=g, dtype=torch.float64) * 2 - 1,
                   torch.tensor([-1.0, 1.0, -0.99, 0.99, 0.0], dtype=torch.float64)])
    x = z.reshape(-1, 1, 1, 1)
    err = (soft_histogram(x, 64) - soft_histogram_reference(x, 64)).abs()
    assert float(err.max()) <= math.exp(-W)
    assert float(err.sum(-1).max()) <= 4 * math.exp(-W)
    assert float(err.max()) > 1e-3 * math.exp(-W)  # the window did cut something off

# ---- properties ----------------------------------------------------------------------------------

def test_converges_to_hard_histogram_as_bandwidth_shrinks():
    bins = 10
    x = _images(n=1, c=3, h=16, w=16)
    L = 2 / bins
    # keep pixels away from bin edges (distance ≥ L/10) so the limit is exact
    frac = ((x + 1) / L) % 1
    x = torch.where((frac < 0.1) | (frac > 0.9), x.new_tensor(0.05), x)
    hard = hard_histogram(x, bins)
    errors = [float((soft_histogram(x, bins, B) - hard).abs().max()) for B in (L, L / 10, L / 100, L / 1000)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6
    assert errors[0] > 1e-2  # at B = L the soft histogram really is soft


def test_sums_to_one_up_to_edge_mass():
    bins = 16
    B = default_bandwidth(bins)
    x = _images(n=2, c=3, h=8, w=8)
    h = soft_histogram(x, bins)
    # mass beyond the outer edges: σ((-1 - z)/B) below and σ((z - 1)/B) above, per pixel
    tails = (torch.sigmoid((-1 - x) / B) + torch.sigmoid((x - 1) / B)).mean(dim=(2, 3))
    torch.testing.assert_close(h.sum(-1), 1 - tails, atol=1e-6, rtol=0)
    inner = torch.zeros(1, 3, 8, 8)  # pixels at 0 are 50 bandwidths from ±1: edge mass ≈ 2e-22
    torch.testing.assert_close(soft_histogram(inner, bins, 0.02).sum(-1), torch.ones(1, 3), atol=1e-6, rtol=0)


def test_invariant_to_permuting_pixels():
    x = _images(n=1, c=3, h=8, w=8)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    y = x.reshape(1, 3, 64)[..., perm].reshape(1, 3, 8, 8)
    torch.testing.assert_close(soft_histogram(x, 32), soft_histogram(y, 32), atol=1e-6, rtol=0)


def test_binary_mask_equals_histogram_of_selected_pixels():
    x = _images(n=1, c=3, h=6, w=6)
    mask = _mask(n=1, h=6, w=6)
    sel = mask.flatten().bool()
    selected = x.reshape(1, 3, 36)[..., sel].reshape(1, 3, 1, -1)
    torch.testing.assert_close(soft_histogram(x, 16, mask=mask), soft_histogram(selected, 16), atol=1e-6, rtol=0)
    torch.testing.assert_close(hard_histogram(x, 16, mask=mask), hard_histogram(selected, 16), atol=1e-7, rtol=0)


def test_constant_image_mass_in_right_bin():
    bins = 8  # L = 0.25; value 0.3 lies in bin floor((0.3 + 1) / 0.25) = 5, centre 0.375
    x = torch.full((1, 3, 4, 4), 0.3)
    h = soft_histogram(x, bins, bandwidth=0.01)
    assert h.argmax(-1).eq(5).all()
    assert float(h[..., 5].min()) > 0.99
    assert hard_histogram(x, bins)[..., 5].eq(1).all()
    assert hard_histogram(torch.ones(1, 1, 2, 2), bins)[0, 0, -1] == 1  # 1.0 goes to the last bin
    assert hard_histogram(-torch.ones(1, 1, 2, 2), bins)[0, 0, 0] == 1


def test_analytic_single_pixel_value():
    """One pixel at z: P(k) = σ((z − e_k)/B) − σ((z − e_{k+1})/B), computed here by hand."""
    z, bins, B = 0.1, 4, 0.3
    edges = [-1 + j * 0.5 for j in range(bins + 1)]
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    expected = [sig((z - edges[k]) / B) - sig((z - edges[k + 1]) / B) for k in range(bins)]
    got = soft_histogram(torch.full((1, 1, 1, 1), z, dtype=torch.float64), bins, B)[0, 0].tolist()
    assert got == pytest.approx(expected, abs=1e-12)


# ---- losses ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["l2", "emd", "hellinger"])
def test_losses_zero_for_equal_positive_otherwise(kind):
    h1 = soft_histogram(_images(seed=0), 16)
    h2 = soft_histogram(_images(seed=1) * 0.5, 16)
    assert float(histogram_loss(h1, h1.clone(), kind)) == pytest.approx(0.0, abs=1e-7)
    assert float(histogram_loss(h1, h2, kind)) > 1e-3


def test_l2_loss_is_eq6():
    a = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    b = torch.tensor([[[0.0, 1.0], [0.5, 0.5], [0.0, 1.0]]])
    # channel R: ‖(1, −1)‖ = √2, G: 0, B: 0; batch mean over one image
    assert float(histogram_loss(a, b, "l2")) == pytest.approx(math.sqrt(2))
    # EMD: CDFs (1, 1) vs (0, 1) differ by 1 in one bin of width L = 1
    assert float(histogram_loss(a, b, "emd")) == pytest.approx(1.0)
    # Hellinger of disjoint one-hots: ‖(1, −1)‖/√2 = 1
    assert float(histogram_loss(a, b, "hellinger")) == pytest.approx(1.0, abs=1e-5)


def test_l2_loss_gradient_finite_at_zero_difference():
    h = torch.full((1, 3, 4), 0.25, requires_grad=True)
    histogram_loss(h, h.detach().clone(), "l2").backward()
    assert torch.isfinite(h.grad).all()


def _descend(kind, seed, gain, shift, steps=300):
    """Adam on raw pixel values (clamped to [-1, 1]) towards the histogram of gain·src + shift."""
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(1, 3, 16, 16, generator=g) * 1.6 - 0.8
    target = soft_histogram((src * gain + shift).clamp(-1, 1), 16)
    x = src.clone().requires_grad_()
    opt = torch.optim.Adam([x], lr=0.01)
    first = float(histogram_loss(soft_histogram(x.detach(), 16), target, kind))
    for _ in range(steps):
        loss = histogram_loss(soft_histogram(x, 16), target, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    return first, float(histogram_loss(soft_histogram(x.detach(), 16), target, kind))


@pytest.mark.parametrize("kind", ["l2", "emd", "hellinger"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_descent_matches_target_histogram(kind, seed):
    """Optimising pixels with the histogram loss moves their histogram onto a target's (≥ 90 %).

    This is the property the GAN relies on. The target is a moderate recolouring (gain 0.9,
    shift 0.1, a colour change of about one bin). For far targets the L2 loss of eq (6) stalls
    in local minima (pixels pushed into empty tails; measured: loss falls by only ~70 % for gain
    0.7, shift 0.2), while the EMD's cumulative form still pulls them home — see the next test.
    """
    first, final = _descend(kind, seed, 0.9, 0.1)
    assert final <= 0.1 * first, (first, final)


def test_emd_reaches_far_targets_where_l2_stalls():
    first_emd, final_emd = _descend("emd", 0, 0.7, 0.2)
    first_l2, final_l2 = _descend("l2", 0, 0.7, 0.2)
    assert final_emd <= 0.1 * first_emd
    assert final_l2 / first_l2 > final_emd / first_emd


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call,name",
    [
        (lambda x, m: soft_histogram(x, 0), "bins"),
        (lambda x, m: soft_histogram(x, -3), "bins"),
        (lambda x, m: soft_histogram(x, 2.5), "bins"),
        (lambda x, m: soft_histogram(x, 8, 0.0), "bandwidth"),
        (lambda x, m: soft_histogram(x, 8, -0.1), "bandwidth"),
        (lambda x, m: soft_histogram(x, 8, float("nan")), "bandwidth"),
        (lambda x, m: soft_histogram(x[0], 8), "images"),
        (lambda x, m: soft_histogram(x * 3, 8), "images"),
        (lambda x, m: soft_histogram((x * 100).long(), 8), "images"),
        (lambda x, m: soft_histogram(x, 8, mask=m[:, :, :2]), "mask"),
        (lambda x, m: soft_histogram(x, 8, mask=torch.zeros_like(m)), "mask"),
        (lambda x, m: soft_histogram(x, 8, mask=m * 2), "mask"),
        (lambda x, m: soft_histogram_reference(x, 0), "bins"),
        (lambda x, m: soft_histogram_reference(x, 8, mask=torch.zeros_like(m)), "mask"),
        (lambda x, m: hard_histogram(x, 0), "bins"),
        (lambda x, m: hard_histogram(x * 3, 4), "images"),
        (lambda x, m: histogram_loss(soft_histogram(x, 4), soft_histogram(x, 4), "kl"), "kind"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    x, m = _images(), _mask()
    with pytest.raises(ValueError, match=name):
        call(x, m)


def test_values_slightly_outside_range_are_tolerated():
    x = _images().clamp(-1, 1)
    x[0, 0, 0, 0] = 1.0005  # tanh round-off scale
    assert torch.isfinite(soft_histogram(x, 8)).all()


def test_docstring_cites_equations_and_shapes():
    doc = soft_histogram.__doc__
    assert "eq (3)–(4)" in doc and "(N, C, H, W)" in doc and "(N, C, K)" in doc
