"""The DCGAN of knees (histgan.train.dcgan) and its latent space (histgan.eval.latent)."""

import math

import numpy as np
import pytest
import torch

import histgan
from histgan.train import dcgan
from histgan.eval import latent
from histgan.data import synthetic
from histgan.train.checkpoint import load_checkpoint
from histgan.errors import HistganError

TINY = dict(batch_size=4, size=16, nz=8, ngf=8, ndf=8, checkpoint_every=2)


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcgan-data")
    p = synthetic.PRESETS["quick"]
    histgan.write_dataset(root, size=p.size, n_train=p.n_train, n_test=p.n_test, progress=False)
    return root


@pytest.mark.parametrize("size", [8, 32, 64])
def test_shapes_and_output_range(size):
    G, D = dcgan.Generator(nz=16, ngf=8, size=size), dcgan.Discriminator(ndf=8, size=size)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, size, size) and float(x.detach().abs().max()) <= 1.0
    assert D(x).shape == (3,)
    n_up = int(math.log2(size)) - 2
    assert D.features(x).shape == (3, 8 * 2 ** (n_up - 1), 4, 4)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == n_up + 1 and all(m.stride == ((1, 1) if i == 0 else (2, 2)) for i, m in enumerate(convs))


def test_generator_refuses_a_latent_of_the_wrong_size():
    with pytest.raises(HistganError, match=r"z must be a \(N, 16\)"):
        dcgan.Generator(nz=16, ngf=8, size=16)(torch.randn(2, 15))


def test_dcgan_initialisation_statistics():
    torch.manual_seed(0)
    G, D = dcgan._models(dcgan.DcganConfig(size=64, nz=64, ngf=32, ndf=32))
    convs = torch.cat([m.weight.detach().flatten() for net in (G, D) for m in net.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert convs.numel() > 1_000_000
    assert abs(float(convs.mean())) < 1e-3 and abs(float(convs.std()) - 0.02) < 2e-4  # N(0, 0.02)
    bn = [m for net in (G, D) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bn])
    assert abs(float(scales.mean()) - 1) < 0.01 and 0.015 < float(scales.std()) < 0.025  # N(1, 0.02)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in bn)


@pytest.mark.parametrize("bad", [dict(size=48), dict(size=4), dict(nz=0), dict(lr=0.0), dict(beta1=1.0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(HistganError, match="dcgan"):
        dcgan.DcganConfig(**bad)


def test_gan_losses_analytic():
    # D undecided (logit 0): both terms of L_D are log 2, L_G is log 2.
    loss_d, loss_g = dcgan.gan_losses(torch.zeros(4), torch.zeros(4))
    assert float(loss_d) == pytest.approx(2 * math.log(2)) and float(loss_g) == pytest.approx(math.log(2))


def test_slerp_keeps_unit_norm_and_meets_lerp_at_the_ends():
    g = torch.Generator().manual_seed(0)
    a, b = latent.nnz(torch.randn(5, 32, generator=g)), latent.nnz(torch.randn(5, 32, generator=g))
    for t in np.linspace(0, 1, 11):
        assert torch.allclose(latent.slerp(a, b, float(t)).norm(dim=-1), torch.ones(5), atol=1e-5)
    for t in (0.0, 1.0):
        assert torch.allclose(latent.slerp(a, b, t), latent.lerp(a, b, t), atol=1e-5)
    # midpoint of orthogonal unit vectors: (a + b) / √2
    e0, e1 = torch.eye(2)
    assert torch.allclose(latent.slerp(e0, e1, 0.5), (e0 + e1) / math.sqrt(2), atol=1e-6)
    assert torch.allclose(latent.slerp(a, a, 0.3), a, atol=1e-5)  # parallel: no division by sin 0
    assert latent.interpolate(a[0], b[0], [0, 0.5, 1], "lerp").shape == (3, 32)
    with pytest.raises(HistganError, match="mode"):
        latent.interpolate(a[0], b[0], [0.5], "cubic")


def test_inversion_recovers_a_generated_image():
    # PyTorch's default initialisation (not DCGAN's N(0, 0.02), whose images are nearly constant) gives
    # images that differ with z; a few batches in train mode settle batch norm's running statistics.
    torch.manual_seed(0)
    G, D = dcgan.Generator(nz=8, ngf=16, size=16), dcgan.Discriminator(ndf=8, size=16)
    with torch.no_grad():
        for _ in range(20):
            G(torch.randn(64, 8))
    G.eval()
    z_true = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = G(z_true)
    found = latent.invert(G, D, y, steps=300, restarts=3, lr=0.05, feature_weight=0.1, seed=2)
    base = float(((y - y.mean(0)) ** 2).mean())  # error of answering every target with their mean image
    assert found.curve.shape == (300, 3, 3) and found.z.shape == (3, 8) and found.images.shape == y.shape
    assert base > 1e-4 and float(found.error.max()) < 1e-3 * base, (found.error, base)
    assert torch.allclose(found.z, z_true, atol=1e-2)  # the latent itself is found, not only a look-alike
    assert float(found.curve[-1].min(0).values.max()) < float(found.curve[0].min(0).values.min())  # it descended
    with pytest.raises(HistganError, match=r"targets must be \(N, 3, 16, 16\)"):
        latent.invert(G, D, torch.zeros(1, 3, 8, 8))


def test_centre_mask_and_pick(quick_data):
    m = latent.centre_mask(8, 0.5)
    assert float(m.sum()) == 16 and float(m[..., 2:6, 2:6].sum()) == 16
    with pytest.raises(HistganError, match="fraction"):
        latent.centre_mask(8, 0.0)
    tones = [synthetic.load_meta(quick_data)["images"]["trainB"][n]["appearance"]["tone"]
             for n in latent.pick(quick_data, order="-tone")]
    assert tones == sorted(tones, reverse=True) and len(tones) == 6
    with pytest.raises(HistganError, match="widen"):
        latent.pick(quick_data, tone=(11, 12))


def test_true_between_moves_lightness_from_start_to_end(quick_data):
    light, dark = latent.pick(quick_data, n=1), latent.pick(quick_data, n=1, order="-tone")
    lab = latent.true_between_lab(quick_data, "trainB", light, dark, [0, 0.5, 1])
    assert lab[0, 0] > lab[1, 0] > lab[2, 0]  # L* falls monotonically from light to dark skin


def _fit(root, out, steps, **kw):
    return dcgan.fit_dcgan(root, out, steps=steps, device="cpu", progress=False, **{**TINY, **kw})


def test_training_runs_resumes_bit_exactly_and_refuses_other_settings(quick_data, tmp_path, monkeypatch):
    full = _fit(quick_data, tmp_path / "full", 6)
    ref = load_checkpoint(full / "checkpoints" / "latest.pt")
    assert ref["kind"] == "dcgan" and ref["step"] == 6 and all(np.isfinite(r[1:]).all() for r in ref["log"])
    # interrupted after the step-4 checkpoint, then resumed
    calls = {"n": 0}
    real_step = dcgan.train_step

    def dies_at_step_5(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(dcgan, "train_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _fit(quick_data, tmp_path / "cut", 6)
    monkeypatch.setattr(dcgan, "train_step", real_step)
    with pytest.raises(HistganError, match="already holds checkpoints"):
        _fit(quick_data, tmp_path / "cut", 6)
    _fit(quick_data, tmp_path / "cut", 6, resume=True)
    got = load_checkpoint(tmp_path / "cut" / "checkpoints" / "latest.pt")
    for key in ("G", "D"):
        for name, value in ref[key].items():
            assert torch.equal(value, got[key][name]), (key, name)
    assert got["log"] == ref["log"]
    with pytest.raises(HistganError, match=r"other settings: nz=8 \(now 16\)"):
        _fit(quick_data, tmp_path / "cut", 8, resume=True, nz=16)
    G, D, config = dcgan.load_dcgan(full)
    assert config.nz == 8 and not G.training
    z, x = dcgan.sample(G, 2, seed=0)
    assert x.shape == (2, 3, 16, 16)
    with pytest.raises(HistganError, match="no trained DCGAN"):
        dcgan.load_dcgan(tmp_path / "nothing")


def test_corner_sets_sit_at_their_corners(quick_data):
    meta = synthetic.load_meta(quick_data)["images"]["trainB"]
    tone = {k: v["appearance"]["tone"] for k, v in meta.items()}
    flex = {k: abs(v["shape"]["bend"]) for k, v in meta.items()}
    dark_bent, light_straight = latent.corner(quick_data, n=2), latent.corner(quick_data, dark=False, bent=False, n=2)
    assert len(dark_bent) == 2 and not set(dark_bent) & set(light_straight)
    assert np.mean([tone[k] for k in dark_bent]) > np.mean([tone[k] for k in light_straight])
    assert np.mean([flex[k] for k in dark_bent]) > np.mean([flex[k] for k in light_straight])
    assert latent.corner(quick_data, n=100) and len(latent.corner(quick_data, n=100)) == len(meta)


def test_set_latent_keeps_the_sets_norm_and_the_means_direction():
    torch.manual_seed(0)
    G = dcgan.Generator(nz=8, ngf=8, size=8)
    images = G.eval()(torch.randn(4, 8)).detach()
    kept, found = latent.set_latent(G, None, images, steps=5, restarts=1)
    plain, _ = latent.set_latent(G, None, images, keep_norm=False, steps=5, restarts=1)
    assert torch.allclose(plain, found.z.mean(0))
    assert float(kept.norm()) == pytest.approx(float(found.z.norm(dim=1).mean()), rel=1e-5)
    assert torch.allclose(latent.nnz(kept), latent.nnz(plain), atol=1e-6) and float(plain.norm()) < float(kept.norm())


def test_centre_floor_is_zero_for_a_uniform_knee_and_counts_the_square_skin_share():
    from histgan.eval.latent import centre_floor, centre_mask

    size = 20
    images = torch.full((2, 3, size, size), 0.3)
    images[:, 0] = -0.2  # one uniform colour everywhere
    masks = torch.ones(2, 1, size, size)
    masks[1, :, :, : size // 2] = 0  # second knee: its left half is background
    out = centre_floor(images, masks)
    square = centre_mask(size)
    left = float(square[..., : size // 2].sum() / square.sum())
    assert out["skin"] == pytest.approx((1 + (1 - left)) / 2) and out["skin_min"] == pytest.approx(1 - left)
    assert out["delta_e"] == pytest.approx(0, abs=1e-4)  # same colour inside and outside the square
    images[:, :, : size // 4] = 0.9  # a light band at the top, outside the square but inside the mask
    assert centre_floor(images, masks)["delta_e"] > 1
