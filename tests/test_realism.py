"""Tests for histgan.eval.realism: Laplacian pyramid, SWD of patch sets, classifier two-sample test, fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from histgan.eval import realism as R
from histgan.errors import HistganError
from histgan.metrics import gaussian_lowpass


@pytest.fixture(scope="module")
def y_images(tmp_path_factory) -> torch.Tensor:
    """96 synthetic real-domain (Y) knees at 32²: skin texture, shading, varied backgrounds."""
    from histgan.data.folders import load_domain
    from histgan.data.synthetic import write_dataset

    root = write_dataset(tmp_path_factory.mktemp("synth"), size=32, n_train=(1, 96), n_test=(1, 1), seed=0,
                         progress=False)
    return load_domain(Path(root), "trainB")[0]


def _noisy(x: torch.Tensor, std: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(-1, 1)


# ---- pyramid ---------------------------------------------------------------------------------------
def test_laplacian_pyramid_shapes_and_constant_image():
    levels = R.laplacian_pyramid(torch.full((2, 3, 64, 64), 0.3))
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(64, 64), (32, 32), (16, 16)]
    assert all(lv.abs().max() < 1e-6 for lv in levels[:-1])  # a constant has no detail at any scale
    assert torch.allclose(levels[-1], torch.full_like(levels[-1], 0.3))  # the residual keeps the level


def test_patch_descriptors_normalised_per_channel(y_images):
    desc = R.patch_descriptors(y_images, patches_per_image=16)
    assert [tuple(d.shape) for d in desc] == [(96 * 16, 147)] * 2
    per_channel = desc[0].reshape(-1, 3, 49)
    np.testing.assert_allclose(per_channel.mean(dim=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(dim=(0, 2)), 1, atol=1e-3)


# ---- SWD -------------------------------------------------------------------------------------------
def test_swd_of_a_set_with_itself_is_zero(y_images):
    swd = R.sliced_wasserstein(y_images, y_images)
    assert swd.shape == (2,) and np.all(swd == 0)


@pytest.mark.parametrize("degrade, strengths", [
    (lambda x, s: gaussian_lowpass(x, s), (0.6, 1.2, 2.4)),
    (_noisy, (0.05, 0.1, 0.2)),
])
def test_swd_grows_monotonically_with_blur_and_noise(y_images, degrade, strengths):
    ref = R.SwdReference(y_images, directions=128, patches_per_image=32)
    values = [float(ref.distance(degrade(y_images, s)).mean()) for s in strengths]
    assert 0 < values[0] < values[1] < values[2], values


def test_swd_deterministic_and_symmetric_in_level_count(y_images):
    a, b = y_images[:48], y_images[48:]
    first, again = R.sliced_wasserstein(a, b, directions=64, seed=3), R.sliced_wasserstein(a, b, directions=64, seed=3)
    np.testing.assert_array_equal(first, again)
    assert np.all(first > 0)


@pytest.mark.parametrize("a, b, match", [
    (torch.zeros(4, 3, 32, 32), torch.zeros(5, 3, 32, 32), "shape"),
    (torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 32, 32), r"\(N, 3, H, W\)"),
    (torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8), "at least 16"),
])
def test_swd_bad_input(a, b, match):
    with pytest.raises(HistganError, match=match):
        R.sliced_wasserstein(a, b)


# ---- classifier two-sample test --------------------------------------------------------------------
#: Two halves of one set: held-out accuracy within this of 0.5. With 24 test images per class the
#: accuracy of indistinguishable sets has a standard deviation of 0.5 / sqrt(48) ≈ 0.07; 0.2 is 2.8 of it.
C2ST_MARGIN = 0.2


def test_c2st_two_halves_of_one_set_is_chance(y_images):
    acc = R.c2st_accuracy(y_images[:48], y_images[48:], seed=0)
    assert abs(acc - 0.5) <= C2ST_MARGIN, acc


def test_c2st_grey_against_colour_is_told_apart(y_images):
    grey = y_images.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # X-like: grey renders
    assert R.c2st_accuracy(grey[:48], y_images[48:], seed=0) >= 0.9


def test_c2st_deterministic_and_leaves_global_rng_alone(y_images):
    state = torch.get_rng_state()
    a = R.c2st_accuracy(y_images[:8], _noisy(y_images[8:16], 0.2), seed=5, steps=10)
    assert torch.equal(state, torch.get_rng_state())
    assert a == R.c2st_accuracy(y_images[:8], _noisy(y_images[8:16], 0.2), seed=5, steps=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"a": torch.zeros(4, 3, 16, 16), "b": torch.zeros(3, 3, 16, 16)}, "balanced"),
    ({"a": torch.zeros(1, 3, 16, 16), "b": torch.zeros(1, 3, 16, 16)}, "at least 2"),
    ({"a": torch.zeros(4, 3, 16, 16), "b": torch.zeros(4, 3, 16, 16), "train_fraction": 1.0}, "train_fraction"),
    ({"a": torch.zeros(4, 3, 16, 16), "b": torch.zeros(4, 3, 16, 16), "steps": 0}, "steps"),
    ({"a": np.zeros((4, 3, 16, 16)), "b": torch.zeros(4, 3, 16, 16)}, "a must be a tensor"),
])
def test_c2st_bad_input(kwargs, match):
    with pytest.raises(HistganError, match=match):
        R.c2st_accuracy(**kwargs)


@pytest.mark.parametrize("n, train_fraction, held_out", [(128, 0.5, 64), (5, 0.5, 3), (9, 0.25, 7), (2, 0.9, 1)])
def test_c2st_null_sd_is_the_binomial_sd_of_the_held_out_images(n, train_fraction, held_out):
    # a guessing classifier is right on each of the 2 m held-out images with probability 1/2: variance 1/(4 · 2m)
    assert R.c2st_null_sd(n, train_fraction) == pytest.approx((0.25 / (2 * held_out)) ** 0.5, rel=1e-12)


@pytest.mark.parametrize("n, train_fraction", [(5, 0.5), (7, 0.3), (4, 0.9)])
def test_c2st_null_sd_counts_the_images_c2st_accuracy_holds_out(n, train_fraction):
    # an accuracy over 2 m held-out images is a multiple of 1/(2 m): m read back from the test's own results
    g = torch.Generator().manual_seed(n)
    m = round(0.125 / R.c2st_null_sd(n, train_fraction) ** 2)  # sd² = 1 / (8 m)
    for seed in range(3):
        acc = R.c2st_accuracy(torch.rand(n, 3, 8, 8, generator=g), torch.rand(n, 3, 8, 8, generator=g), seed=seed,
                              train_fraction=train_fraction, steps=2)
        assert acc * 2 * m == pytest.approx(round(acc * 2 * m), abs=1e-6)
    assert R.c2st_null_sd(100) < R.c2st_null_sd(50) < R.c2st_null_sd(10)


@pytest.mark.parametrize("kwargs, match", [({"n": 1}, "n must be"), ({"n": True}, "n must be"), ({"n": 2.0}, "n must be"),
                                           ({"n": 10, "train_fraction": 0.0}, "train_fraction")])
def test_c2st_null_sd_bad_input(kwargs, match):
    with pytest.raises(HistganError, match=match):
        R.c2st_null_sd(**kwargs)


def test_c2st_downsamples_large_images():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 128, 128, generator=g), torch.rand(4, 3, 128, 128, generator=g)
    assert 0.0 <= R.c2st_accuracy(a, b, steps=1) <= 1.0


# ---- foreground only -------------------------------------------------------------------------------
def test_fill_background_sets_outside_the_mask_only(y_images):
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 4:30] = 1
    out = R.fill_background(y_images[:2], mask, fill=0.25)
    assert torch.equal(out[:, :, 8:20, 4:30], y_images[:2, :, 8:20, 4:30])
    assert torch.all(out[mask.expand(-1, 3, -1, -1) == 0] == 0.25)
    with pytest.raises(HistganError, match="masks"):
        R.fill_background(y_images[:2], mask[:1])
