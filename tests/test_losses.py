"""Loss terms: analytic values, masks, weights of eq (7), bad input."""

import math

import pytest
import torch

from histgan.histogram import soft_histogram
from histgan.losses import GANLoss, colour_loss, cycle_loss, identity_loss, masked_histogram, total_loss


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
