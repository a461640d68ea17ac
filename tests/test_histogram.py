"""Tests of the differentiable colour histogram, eqs (1)–(6), and of its kernel, eq (2)."""

from __future__ import annotations

import math

import pytest
import torch

import histgan.histogram_window
from histgan.histogram import (
    bin_width,
    default_bandwidth,
    hard_histogram,
    histogram_loss,
    soft_histogram,
    soft_histogram_reference,
    window_half_width,
)
from histgan.kernel import GAUSSIAN, LOGISTIC

KERNELS = pytest.mark.parametrize("kernel", [LOGISTIC, GAUSSIAN], ids=lambda k: k.name)


def _images(n=2, c=3, h=12, w=10, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, h, w, generator=g, dtype=dtype) * 2 - 1)


def _mask(n=2, h=12, w=10, seed=1, p=0.6):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(n, 1, h, w, generator=g) < p).float()
    m[:, :, 0, 0] = 1.0  # never empty
    return m


# ---- the kernel, eq (2) --------------------------------------------------------------------------

@KERNELS
def test_kernel_density_is_the_derivative_of_its_cdf(kernel):
    u = torch.linspace(-30, 30, 6001, dtype=torch.float64, requires_grad=True)
    (autograd,) = torch.autograd.grad(kernel.cdf(u).sum(), u)
    u = u.detach()
    torch.testing.assert_close(kernel.density(u), autograd, rtol=1e-10, atol=1e-300)
    g = torch.randn(u.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # the in-place forms the windowed histogram uses give the same numbers
    torch.testing.assert_close(kernel.cdf_(u.clone()), kernel.cdf(u), rtol=0, atol=0)
    torch.testing.assert_close(kernel.density_(u.clone()), kernel.density(u), rtol=0, atol=0)
    torch.testing.assert_close(kernel.scaled_density_(g, u.clone()), g * kernel.density(u), rtol=1e-12, atol=1e-300)
    # a symmetric kernel of unit area: cdf(−u) = 1 − cdf(u), ∫K = 1
    torch.testing.assert_close(kernel.cdf(-u), 1 - kernel.cdf(u), rtol=0, atol=1e-15)
    assert float(torch.trapezoid(kernel.density(u), u)) == pytest.approx(1.0, abs=1e-9)


@KERNELS
@pytest.mark.parametrize("eps", [torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps, 1e-3])
def test_kernel_tail_is_tight(kernel, eps):
    """``t = tail(eps)`` bounds the tail mass, ``1 − cdf(t) ≤ eps``, and is within 10 % of the least such ``t``.

    By symmetry ``1 − cdf(t) = cdf(−t)``, computed here without cancellation. The logistic's
    ``t = ln(1/eps)`` gives ``σ(−t) = eps / (1 + eps)``; the Gaussian's exact quantile gives ``eps`` to a
    few float64 ulps, hence the factor ``1 + 1e-12``. At ``0.9 t`` the mass is above ``1.5 eps``
    (logistic: ``≈ eps^0.9 ≥ 1.99 eps`` for ``eps ≤ 1e-3``; Gaussian: ``≥ 2.7 eps``).
    """
    t = kernel.tail(eps)
    assert float(kernel.cdf(torch.tensor(-t, dtype=torch.float64))) <= eps * (1 + 1e-12)
    assert float(kernel.cdf(torch.tensor(-0.9 * t, dtype=torch.float64))) > 1.5 * eps


@KERNELS
@pytest.mark.parametrize("eps", [0.0, -1e-3, 0.5, 2.0])
def test_kernel_tail_rejects_a_mass_outside_the_open_half_interval(kernel, eps):
    with pytest.raises(ValueError, match="eps"):
        kernel.tail(eps)


@pytest.mark.parametrize("kernel,expected", [(LOGISTIC, (17, 38)), (GAUSSIAN, (7, 10))], ids=["logistic", "Gaussian"])
def test_window_half_width_values_in_its_docstring(kernel, expected):
    """``W = ⌈tail(eps)⌉ + 1`` for float32 and float64, and ``1 − cdf(W) < eps`` (window_half_width)."""
    for dtype, W_expected in zip((torch.float32, torch.float64), expected):
        W = window_half_width(dtype, kernel)
        assert W == W_expected
        assert float(kernel.cdf(torch.tensor(-W, dtype=torch.float64))) < torch.finfo(dtype).eps
    assert window_half_width(torch.float32) == window_half_width(torch.float32, LOGISTIC)  # the default


def test_bin_width_is_shared_by_bandwidth_and_bins():
    for K in (1, 7, 32, 256):
        assert bin_width(K) == 2.0 / K == default_bandwidth(K)
    K = 8  # the centre of bin k, −1 + (k + 1/2) L, is counted in bin k
    centres = -1 + (torch.arange(K, dtype=torch.float64) + 0.5) * bin_width(K)
    assert hard_histogram(centres.reshape(1, 1, 1, K), K)[0, 0].eq(1 / K).all()


# ---- equality with the reference ---------------------------------------------------------------

@pytest.mark.parametrize("bins,bandwidth", [(32, None), (256, None), (8, 0.05), (5, 1.0), (1, None), (64, 0.002)])
@pytest.mark.parametrize("masked", [False, True])
@KERNELS
def test_soft_equals_reference_values_and_gradients(bins, bandwidth, masked, kernel):
    x = _images()
    mask = _mask() if masked else None
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    a = soft_histogram(xa, bins, bandwidth, mask, kernel=kernel)
    b = soft_histogram_reference(xb, bins, bandwidth, mask, kernel=kernel)
    assert a.shape == (2, 3, bins)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    w = torch.randn(a.shape, generator=torch.Generator().manual_seed(5))
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)


def test_large_image_uses_several_chunks_and_stays_equal(monkeypatch):
    monkeypatch.setattr(histgan.histogram_window, "_CHUNK_ELEMENTS", 1000)  # force many chunks
    x = _images(n=2, h=20, w=20)
    torch.testing.assert_close(soft_histogram(x, 16), soft_histogram_reference(x, 16), atol=1e-6, rtol=0)


@pytest.mark.parametrize("bins", [4, 64])  # K = 4: one window holds every edge; K = 64: windows of edges
@KERNELS
def test_gradcheck_float64(bins, kernel):
    x = _images(n=1, c=2, h=4, w=3, dtype=torch.float64).requires_grad_()
    mask = _mask(n=1, h=4, w=3).double()
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, bins, None, mask, kernel=kernel), (x,))
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, bins, 0.1, kernel=kernel), (x,))


@KERNELS
@pytest.mark.parametrize("W", [None, 2.0, 4.0])
def test_window_truncation_bound(monkeypatch, kernel, W):
    """Per pixel the window's truncation is at most ``δ = 1 − cdf(W + L/B)`` in any bin and ``4 δ`` in L1.

    That is :func:`window_half_width`'s bound: every skipped edge lies more than ``W B + L`` from the
    pixel. ``W = None`` is the float32 window (17 bandwidths for the logistic, 7 for the Gaussian);
    2 and 4 are narrow windows that cut visibly. The histograms are of single pixels (each
    histogram is one pixel's kernel over the bins) computed in float64 with that window, so the
    only other error is float64 round-off, allowed as ``4 eps64`` per bin. K = 64 at B = L: windows
    hold ``2W + 2`` of the 65 edges, so truncation really happens; wherever ``δ`` is above
    round-off the worst pixel's error is checked to reach ``δ / 2`` (it reaches ``δ``), so a window
    one bandwidth wider or narrower than the code's fails this test.
    """
    W = window_half_width(torch.float32, kernel) if W is None else W
    monkeypatch.setattr(histgan.histogram, "window_half_width", lambda dtype, kernel: W)
    g = torch.Generator().manual_seed(7)
    z = torch.cat([torch.rand(300, generator=g, dtype=torch.float64) * 2 - 1,
                   torch.tensor([-1.0, 1.0, -0.99, 0.99, 0.0], dtype=torch.float64)])
    x = z.reshape(-1, 1, 1, 1)
    bins = 64
    delta = float(kernel.cdf(torch.tensor(-(W + bin_width(bins) / default_bandwidth(bins)), dtype=torch.float64)))
    roundoff = 4 * torch.finfo(torch.float64).eps
    err = (soft_histogram(x, bins, kernel=kernel) - soft_histogram_reference(x, bins, kernel=kernel)).abs()
    assert float(err.max()) <= delta + roundoff
    assert float(err.sum(-1).max()) <= 4 * delta + bins * roundoff
    if delta > 1e3 * roundoff:
        assert float(err.max()) >= delta / 2, "the bound is attained: the window is as narrow as it claims"


# ---- properties ----------------------------------------------------------------------------------

def test_converges_to_hard_histogram_as_bandwidth_shrinks():
    bins = 10
    x = _images(n=1, c=3, h=16, w=16)
    L = bin_width(bins)
    # keep pixels away from bin edges (distance ≥ L/10) so the limit is exact
    frac = ((x + 1) / L) % 1
    x = torch.where((frac < 0.1) | (frac > 0.9), x.new_tensor(0.05), x)
    hard = hard_histogram(x, bins)
    errors = [float((soft_histogram(x, bins, B) - hard).abs().max()) for B in (L, L / 10, L / 100, L / 1000)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6
    assert errors[0] > 1e-2  # at B = L the soft histogram really is soft


@KERNELS
def test_sums_to_one_up_to_edge_mass(kernel):
    bins = 16
    B = default_bandwidth(bins)
    x = _images(n=2, c=3, h=8, w=8)
    h = soft_histogram(x, bins, kernel=kernel)
    # mass beyond the outer edges: cdf((-1 - z)/B) below and cdf((z - 1)/B) above, per pixel
    tails = (kernel.cdf((-1 - x) / B) + kernel.cdf((x - 1) / B)).mean(dim=(2, 3))
    torch.testing.assert_close(h.sum(-1), 1 - tails, atol=1e-6, rtol=0)
    inner = torch.zeros(1, 3, 8, 8)  # pixels at 0 are 50 bandwidths from ±1: edge mass ≈ 2e-22 or less
    torch.testing.assert_close(soft_histogram(inner, bins, 0.02, kernel=kernel).sum(-1), torch.ones(1, 3),
                               atol=1e-6, rtol=0)


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


@KERNELS
@pytest.mark.parametrize("bins", [4, 64])  # one window of all edges; windows of a few
def test_analytic_single_pixel_value(kernel, bins):
    """One pixel at z: P(k) = cdf((z − e_k)/B) − cdf((z − e_{k+1})/B), edges e_j = −1 + 2j/K written out."""
    z, B = 0.1, 0.3 * 4 / bins
    edges = torch.tensor([-1 + j * 2 / bins for j in range(bins + 1)], dtype=torch.float64)
    cdf = kernel.cdf((z - edges) / B)
    expected = (cdf[:-1] - cdf[1:]).tolist()
    got = soft_histogram(torch.full((1, 1, 1, 1), z, dtype=torch.float64), bins, B, kernel=kernel)[0, 0].tolist()
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
        (lambda x, m: soft_histogram(x, 8, kernel="gaussian"), "kernel"),
        (lambda x, m: soft_histogram_reference(x, 8, kernel=torch.sigmoid), "kernel"),
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
    from histgan.images import RANGE_TOLERANCE

    x = _images().clamp(-1, 1)
    x[0, 0, 0, 0] = 1 + RANGE_TOLERANCE / 2  # tanh round-off scale: counted like 1
    inside = x.clone()
    inside[0, 0, 0, 0] = 1.0
    torch.testing.assert_close(soft_histogram(x, 8), soft_histogram(inside, 8), atol=1e-3, rtol=0)
    x[0, 0, 0, 0] = 1 + 2 * RANGE_TOLERANCE
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        soft_histogram(x, 8)


@pytest.mark.parametrize("n,c,h,w,k", [(1, 3, 4, 5, 8), (2, 1, 3, 7, 1), (3, 2, 1, 1, 33)])
def test_shapes_n_c_h_w_to_n_c_k(n, c, h, w, k):
    x = torch.rand(n, c, h, w) * 2 - 1
    assert soft_histogram(x, k).shape == (n, c, k)
    assert soft_histogram(x, k, mask=torch.ones(n, 1, h, w)).shape == (n, c, k)
