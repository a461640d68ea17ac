"""Loss terms: analytic values, masks, weights of eq (7), bad input."""

import math

import pytest
import torch

from histgan.histogram import soft_histogram
from histgan.losses import (GANLoss, colour_loss, cycle_loss, identity_loss, masked_histogram, masked_mean_lab,
                            mean_colour_loss, total_loss)


def test_bce_gan_loss_analytic():
    gan = GANLoss("bce")
    zeros = torch.zeros(2, 1, 3, 3)  # D(.) = σ(0) = ½ → −log ½ for either target
    assert math.isclose(float(gan(zeros, True)), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(gan(zeros, False)), math.log(2), rel_tol=1e-6)
    big = torch.full((1, 1, 2, 2), 20.0)  # confident "real"
    assert float(gan(big, True)) < 1e-8 and math.isclose(float(gan(big, False)), 20.0, rel_tol=1e-6)


def test_lsgan_loss_analytic():
    gan = GANLoss("lsgan")
    ones = torch.ones(1, 1, 2, 2)
    assert float(gan(ones, True)) == 0.0 and float(gan(ones, False)) == 1.0
    assert float(gan(torch.full((1, 1, 2, 2), 3.0), True)) == 4.0


def test_gan_loss_bad_kind():
    with pytest.raises(ValueError, match="gan_loss"):
        GANLoss("wgan")


def test_l1_terms_analytic():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(cycle_loss(a, b)) == 0.5 and float(identity_loss(b, b)) == 0.0


def test_colour_loss_zero_for_same_foreground_whatever_the_background():
    torch.manual_seed(0)
    ref = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    fake = torch.where(mask.bool(), ref, torch.rand(2, 3, 16, 16) * 2 - 1)  # same knee, other background
    h_ref = soft_histogram(ref, 16, mask=mask)
    assert float(colour_loss(fake, mask, h_ref, 16, None)) < 1e-6
    assert float(colour_loss(fake, None, h_ref, 16, None)) > 0.05  # the background counts without a mask


def test_colour_loss_matches_eq6_and_has_gradient():
    fake = (torch.rand(1, 3, 8, 8) * 2 - 1).requires_grad_()
    h_ref = soft_histogram(torch.zeros(1, 3, 8, 8), 8)
    loss = colour_loss(fake, None, h_ref, 8, None)
    expected = sum(torch.linalg.vector_norm(soft_histogram(fake, 8)[0, c] - h_ref[0, c]) for c in range(3))
    assert torch.allclose(loss, expected)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_masked_histogram_clamps_rounding_past_one():
    h = masked_histogram(torch.full((1, 3, 2, 2), 1.0 + 1e-2), None, 8, None)  # a bf16 tanh may overshoot
    assert torch.allclose(h, soft_histogram(torch.ones(1, 3, 2, 2), 8))


def test_total_loss_weights():
    t = {"gan_G": torch.tensor(1.0), "gan_F": torch.tensor(2.0), "cycle_x": torch.tensor(0.5),
         "idt_y": torch.tensor(0.25), "hist_y": torch.tensor(0.1)}
    total = total_loss(t, lambda_gan=1.0, lambda_cycle=10.0, lambda_idt=4.0, lambda_hist=2.0)
    assert math.isclose(float(total), 3.0 + 5.0 + 1.0 + 0.2, rel_tol=1e-6)
    assert math.isclose(float(total_loss(t, 1.0, 0.0, 0.0, 0.0)), 3.0)
    with pytest.raises(ValueError, match="non-zero"):
        total_loss({"hist_y": torch.tensor(1.0)}, 1.0, 1.0, 1.0, 0.0)


def test_masked_mean_lab_of_flat_colours_matches_colour_science():
    """A flat image's mean L*a*b* is its colour's L*a*b* by colour-science (an independent conversion);
    the mask picks one half of a two-colour image; an empty mask gives 0, not NaN."""
    import colour
    import numpy as np

    rgb = np.array([[0.8, 0.55, 0.45], [0.2, 0.3, 0.7]])
    expected = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb))
    image = torch.empty(1, 3, 4, 4, dtype=torch.float64)
    image[..., :2] = torch.as_tensor(rgb[0] * 2 - 1)[:, None, None]
    image[..., 2:] = torch.as_tensor(rgb[1] * 2 - 1)[:, None, None]
    left = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    left[..., :2] = 1
    assert np.allclose(masked_mean_lab(image, left)[0].numpy(), expected[0], atol=1e-6)
    assert np.allclose(masked_mean_lab(image, 1 - left)[0].numpy(), expected[1], atol=1e-6)
    whole = masked_mean_lab(image, None)[0].numpy()  # the mean of L*a*b*, not L*a*b* of the mean RGB
    assert np.allclose(whole, (expected[0] + expected[1]) / 2, atol=1e-6)
    assert torch.equal(masked_mean_lab(image, torch.zeros_like(left)), torch.zeros(1, 3, dtype=torch.float64))


def test_several_masks_share_one_conversion_and_equal_the_masked_means():
    """``masked_mean_labs`` over a foreground, its background and no mask equals each mean written out
    from the per-pixel L*a*b* (float64), and ``mean_colour_losses`` equals the ΔE of each mean against its
    reference, with float64 gradients that pass gradcheck through both terms at once."""
    from histgan.colour_difference import lab_from_unit_rgb
    from histgan.losses import masked_mean_labs, mean_colour_losses

    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 6, 5, generator=g, dtype=torch.float64) * 2 - 1
    fg = (torch.rand(2, 1, 6, 5, generator=g) > 0.4).double()
    lab = lab_from_unit_rgb((img + 1) / 2)
    written = [(lab * m).sum((2, 3)) / m.sum((2, 3)) for m in (fg, 1 - fg, torch.ones_like(fg))]
    got = masked_mean_labs(img, [fg, 1 - fg, None])
    assert len(got) == 3 and all(torch.allclose(a, b, rtol=0, atol=1e-10) for a, b in zip(got, written))
    refs = [torch.tensor([[50.0, 10.0, -5.0], [60.0, 0.0, 20.0]], dtype=torch.float64), written[1] + 1.5]
    far = mean_colour_losses(img, [fg, 1 - fg], refs)
    for d, w, r in zip(far, written, refs):
        assert torch.allclose(d, (w - r).norm(dim=1), atol=1e-9)
    assert torch.allclose(far[1], torch.full((2,), 1.5 * 3**0.5, dtype=torch.float64), atol=1e-9)
    assert torch.autograd.gradcheck(lambda f: sum(t.sum() for t in mean_colour_losses(f, [fg, 1 - fg], refs)),
                                    img.clone().requires_grad_())


def test_mean_colour_loss_is_the_evaluation_delta_e_and_differentiable():
    """The training term equals eq (12) as the evaluation computes it (colour_difference.delta_e) for
    random images and masks, and its float64 gradient passes gradcheck."""
    import numpy as np

    from histgan.colour_difference import delta_e

    g = torch.Generator().manual_seed(0)
    fake = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) * 1.6 - 0.8
    ref = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) * 1.6 - 0.8
    fake_mask = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).double()
    ref_mask = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).double()
    got = mean_colour_loss(fake, fake_mask, masked_mean_lab(ref, ref_mask))
    assert np.allclose(got.numpy(), delta_e(fake, ref, fake_mask, ref_mask), atol=1e-9)
    lab_ref = masked_mean_lab(ref, ref_mask)
    assert torch.autograd.gradcheck(lambda f: mean_colour_loss(f, fake_mask, lab_ref), fake.clone().requires_grad_())
    # the gradient with respect to the mean colour has unit length for a small shift too (eq (6) in L2 does not)
    near = (masked_mean_lab(fake, fake_mask) + torch.tensor([0.0, 0.01, -0.02], dtype=torch.float64)).requires_grad_()
    mean_colour_loss(fake, fake_mask, near).sum().backward()
    assert torch.allclose(near.grad.norm(dim=1), torch.ones(3, dtype=torch.float64), atol=1e-6)


def test_total_loss_weighs_the_mean_colour_terms():
    t = {"cycle_x": torch.tensor(0.5), "mean_y": torch.tensor(3.0), "mean_x": torch.tensor(1.0)}
    assert math.isclose(float(total_loss(t, 1.0, 10.0, 5.0, 2.0, lambda_mean=0.1)), 5.0 + 0.4, rel_tol=1e-6)
    assert math.isclose(float(total_loss(t, 1.0, 10.0, 5.0, 2.0)), 5.0, rel_tol=1e-6)  # default 0: off
