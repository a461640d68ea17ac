"""Networks: shapes, conditioning paths, spectral norm, PatchGAN receptive field, bad input."""

import copy

import pytest
import torch

from histgan.config import INJECTIONS, VARIANTS, make_config
from histgan.histogram import soft_histogram
from histgan.networks.conditioning import FiLM, HistogramEncoder
from histgan.networks.discriminator import Discriminator
from histgan.networks.generator import Generator, build_models
from histgan.networks.spectral_norm import apply_spectral_norm
from histgan.train.step import make_optimisers, train_step


def _batch(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    y = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    ones = torch.ones(n, 1, size, size)
    return {"x": x, "y": y, "x_mask": ones, "y_mask": ones.clone()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("injection", INJECTIONS)
def test_shapes_every_variant_and_injection(variant, injection):
    c = make_config("quick", variant=variant, injection=injection)
    torch.manual_seed(0)
    m = build_models(c)
    b = _batch()
    h = soft_histogram(b["y"], c.bins)
    out = m["G"](b["x"], h)
    assert out.shape == b["x"].shape and out.abs().max() < 1  # tanh output
    assert m["F"](b["y"], soft_histogram(b["x"], c.bins)).shape == b["y"].shape
    assert m["G"].conditioned == (variant in ("histgan_uni", "histgan_bi"))
    assert m["F"].conditioned == (variant == "histgan_bi")
    # PatchGAN at 32² with d_layers=2: 32 → 16 → 8 → 7 → 6
    assert m["D_y"](out).shape == (2, 1, 6, 6)


@pytest.mark.parametrize("variant", ["histgan_uni", "histgan_bi"])
@pytest.mark.parametrize("injection", INJECTIONS)
def test_colour_code_changes_output(variant, injection):
    c = make_config("quick", variant=variant, injection=injection)
    torch.manual_seed(0)
    m = build_models(c)
    train_step(m, make_optimisers(m, c), _batch(), c)  # one step: FiLM / AdaIN projections leave zero
    x = _batch(1, seed=1)["x"]
    dark = soft_histogram(torch.full((1, 3, 8, 8), -0.8), c.bins)
    light = soft_histogram(torch.full((1, 3, 8, 8), 0.8), c.bins)
    with torch.no_grad():
        # with zero projections the two outputs would be bit-identical (FiLM, AdaIN), so any difference
        # above float32 noise shows the trained code path is live (AdaIN's first step moves it least)
        assert (m["G"](x, dark) - m["G"](x, light)).abs().max() > 1e-5


def test_unconditioned_generator_has_no_colour_path():
    c = make_config("quick", variant="cyclegan")
    torch.manual_seed(0)
    G = build_models(c)["G"]
    assert G.encoder_hist is None and G.inject is None and G.film is None
    x = _batch(1)["x"]
    with torch.no_grad():
        assert torch.equal(G(x, soft_histogram(torch.full((1, 3, 4, 4), -0.9), c.bins)),
                           G(x, soft_histogram(torch.full((1, 3, 4, 4), 0.9), c.bins)))
        assert torch.equal(G(x), G(x, None))
    with pytest.raises(ValueError, match="unconditioned"):
        G.encode(torch.zeros(1, 3, c.bins))


def test_conditioned_generator_needs_a_reference_and_accepts_a_code():
    G = Generator(ngf=8, n_blocks=1, code_dim=4, bins=8)
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="h_ref"):
        G(x)
    code = G.encode(torch.full((1, 3, 8), 1 / 8))
    assert torch.equal(G(x, code=code), G(x, torch.full((1, 3, 8), 1 / 8)))


def test_spectral_norm_applied_and_normalises():
    c = make_config("quick", variant="cyclegan_sn")
    torch.manual_seed(0)
    m = build_models(c)
    D = m["D_y"]
    conv = D.net[2]
    assert hasattr(conv, "parametrizations") and "weight" in conv.parametrizations
    with torch.no_grad():
        for _ in range(30):  # power iterations happen in training-mode forwards
            D(torch.rand(1, 3, 32, 32))
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert abs(float(sigma.detach()) - 1.0) < 1e-2
    plain = build_models(make_config("quick", variant="cyclegan"))["D_y"].net[2]
    assert not hasattr(plain, "parametrizations")
    assert any(hasattr(mod, "parametrizations") for mod in m["G"].modules())


def test_film_is_scale_and_shift_per_channel():
    """FiLM of Perez et al.: ``(1 + γ(c)) · x + β(c)`` per sample and channel, written out in float64 from
    the projection's weights, and the coefficients FiLM.coefficients hands the gated backdrop."""
    torch.manual_seed(1)
    film = FiLM(5, 4).double()
    torch.nn.init.normal_(film.proj.weight)
    torch.nn.init.normal_(film.proj.bias)
    code, x = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    gb = code @ film.proj.weight.T + film.proj.bias
    gamma, beta = gb[:, :4, None, None], gb[:, 4:, None, None]
    assert torch.allclose(film(x, code), x * (1 + gamma) + beta, rtol=0, atol=1e-12)
    g, b = film.coefficients(code)
    assert g.shape == b.shape == (2, 4, 1, 1) and torch.allclose(g, gamma) and torch.allclose(b, beta)


def test_film_projection_not_spectrally_normalised():
    G = apply_spectral_norm(Generator(ngf=8, n_blocks=1, code_dim=4, bins=8, injection="film"))
    assert all(not hasattr(f.proj, "parametrizations") for f in G.film)
    out = G(torch.zeros(1, 3, 16, 16), torch.full((1, 3, 8), 1 / 8))
    assert torch.isfinite(out).all()  # a zero matrix has σ = 0: normalising it would give NaN


@pytest.mark.parametrize("d_layers, field", [(3, 70), (2, 34)])
def test_patchgan_receptive_field(d_layers, field):
    torch.manual_seed(0)
    D = Discriminator(ndf=4, d_layers=d_layers, norm="none")
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    out = D(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero().flatten()
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == field and int(cols.max() - cols.min() + 1) == field


def test_bad_input():
    G = Generator(ngf=8, n_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        G(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="injection"):
        Generator(injection="add")
    with pytest.raises(ValueError, match="norm"):
        Generator(norm="layer")
    with pytest.raises(ValueError, match=r"\(N, 3, 8\)"):
        HistogramEncoder(8, 4)(torch.zeros(2, 3, 16))


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
@pytest.mark.parametrize("size", [8, 12])
def test_injection_as_a_bias_map_equals_the_concatenation_in_float64(size, padding):
    """The concat injection computed without the tiled code map (a per-channel bias map; with zero
    padding its borders see fewer taps) gives the outputs and gradients of conv([f, tile(code)]) in float64."""
    from histgan.networks.generator import Generator

    torch.manual_seed(0)
    G = Generator(ngf=4, n_down=1, n_blocks=1, code_dim=5, bins=8, injection="concat", padding=padding).double()
    f = torch.randn(2, 8, size, size, dtype=torch.float64, requires_grad=True)
    code = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    ours = G._inject_conv(f, code)
    tiled = code[:, :, None, None].expand(-1, -1, size, size)
    ref = G.inject[0](torch.cat([f, tiled], dim=1))
    assert torch.allclose(ours, ref, rtol=0, atol=1e-13)
    code_part = ours - torch.nn.functional.conv2d(
        torch.nn.functional.pad(f, (1, 1, 1, 1), mode="constant" if padding == "zeros" else "reflect"),
        G.inject[0].weight[:, :8], G.inject[0].bias)
    border_differs = not torch.allclose(code_part[:, :, 0, 0], code_part[:, :, 1, 1])
    assert border_differs == (padding == "zeros"), "zero padding: the borders see fewer of the code's taps"
    g = torch.randn_like(ref)
    grads = torch.autograd.grad((ours * g).sum(), [f, code, G.inject[0].weight])
    grads_ref = torch.autograd.grad((ref * g).sum(), [f, code, G.inject[0].weight])
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_unet_shapes_and_colour_code(injection):
    c = make_config("quick", variant="histgan_bi", injection=injection, generator="unet")
    torch.manual_seed(0)
    m = build_models(c)
    b = _batch()
    out = m["G"](b["x"], soft_histogram(b["y"], c.bins))
    assert out.shape == b["x"].shape and out.abs().max() < 1
    assert len(m["G"].fuse) == c.n_down


def test_unet_skips_have_the_encoders_shapes():
    """Each skip is the encoder's feature map at one resolution: ngf·2^k channels at (H, W) / 2^k."""
    G = Generator(ngf=8, n_down=3, n_blocks=1, arch="unet")
    x = torch.zeros(2, 3, 32, 40)
    bottom, skips = G.encode_image(x)
    assert bottom.shape == (2, 64, 4, 5)
    assert [tuple(s.shape) for s in skips] == [(2, 8, 32, 40), (2, 16, 16, 20), (2, 32, 8, 10)]
    # the decoder's fusing convs take [upsampled, skip] at each level, coarsest first
    assert [f.in_channels for f in G.fuse] == [64, 32, 16] and [f.out_channels for f in G.fuse] == [32, 16, 8]
    # a change at one pixel of the input reaches the output at that pixel through the finest skip
    # even with the bottleneck's features frozen: the skip path is live
    G.eval()
    with torch.no_grad():
        ref = G(x)
        x2 = x.clone()
        x2[:, :, 10, 10] = 1.0
        assert (G(x2) - ref)[:, :, 10, 10].abs().max() > 0


def test_adain_with_zero_scale_and_shift_is_the_unconditioned_network():
    """AdaIN's projections start at zero: scale 1 + 0 and shift 0 after every norm, so the conditioned
    generator computes exactly what the same weights compute without a code."""
    torch.manual_seed(0)
    G = Generator(ngf=8, n_blocks=2, code_dim=6, bins=8, injection="adain")
    plain = Generator(ngf=8, n_blocks=2, code_dim=0, injection="adain")
    shared = {k: v for k, v in G.state_dict().items() if k in plain.state_dict()}
    assert set(shared) == set(plain.state_dict())  # same names: the AdaIN blocks are ResBlocks + FiLM
    plain.load_state_dict(shared)
    x = _batch(1)["x"]
    h = soft_histogram(_batch(1, seed=3)["y"], 8)
    with torch.no_grad():
        assert torch.allclose(G(x, h), plain(x), atol=1e-6)
        # a code that encodes a real scale and shift changes the output
        for film in [f for b in G.middle for f in b.film]:
            torch.nn.init.normal_(film.proj.weight, 0, 0.5)
        assert (G(x, h) - plain(x)).abs().max() > 1e-3


@pytest.mark.parametrize("overrides", [dict(generator="unet"), dict(injection="adain"), dict(warmup=6),
                                       dict(gan_loss="lsgan"), dict(padding="reflect", generator="unet"),
                                       dict(recolour_hue=15.0, recolour_chroma=1.4),
                                       dict(lambda_mean=0.1, hist_kind="emd"), dict(colour_head=True),
                                       dict(encoder_sn=False), dict(identity_hue=20.0, identity_chroma=1.5),
                                       dict(code_moments=True, injection="concat+film", colour_head=True),
                                       dict(code_moments=True, injection="adain"), dict(code_lr=10.0),
                                       dict(backdrop_code="middle", code_moments=True, lambda_mean=0.1,
                                            colour_head=True),
                                       dict(backdrop_code="everywhere", injection="adain", generator="unet"),
                                       dict(backdrop_code="decoder", injection="film"),
                                       dict(backdrop_code="gated", code_moments=True, colour_head=True,
                                            generator="unet", lambda_mean=0.1),
                                       dict(mask_input=True, backdrop_code="gated", code_moments=True,
                                            colour_head=True, generator="unet")])
def test_new_options_train_a_few_steps(tmp_path, overrides):
    from histgan.data.synthetic import write_dataset
    from histgan.train.loop import fit

    data = tmp_path / "data"
    write_dataset(data, n_train=4, n_test=2, size=32, seed=0, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), **overrides)
    fit(c, progress=False)
    from histgan.train.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ck["step"] == c.steps and all(ck["config"][k] == v for k, v in overrides.items())


def test_warmup_steps_leave_out_the_adversarial_terms(tmp_path):
    """In fit, G's loss of the first ``warmup`` steps is eq (7) without its λ_GAN terms; later, with them."""
    import json

    from histgan.data.synthetic import write_dataset
    from histgan.train.loop import fit

    data = tmp_path / "data"
    write_dataset(data, n_train=4, n_test=2, size=32, seed=0, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), warmup=3,
                    steps=5, lambda_mean=0.1)
    fit(c, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    weights = {"gan": c.lambda_gan, "cycle": c.lambda_cycle, "idt": c.lambda_idt, "hist": c.lambda_hist,
               "mean": c.lambda_mean}
    for row in log:
        assert row["mean_y"] > 0 and row["mean_x"] > 0  # the mean-colour terms are logged with lambda_mean
        parts = {g: sum(v for k, v in row.items() if k.split("_")[0] == g and k != "loss_G") for g in weights}
        without_gan = sum(weights[g] * parts[g] for g in ("cycle", "idt", "hist", "mean"))
        expected = without_gan if row["step"] <= c.warmup else without_gan + weights["gan"] * parts["gan"]
        assert parts["gan"] > 0.01
        assert row["loss_G"] == pytest.approx(expected, rel=1e-4), row["step"]


def test_a_config_written_before_the_new_fields_still_loads(tmp_path):
    import json

    from histgan.config import TrainConfig

    old = make_config("cpu").to_dict()
    for field in ("generator", "warmup", "colour_head", "lambda_mean", "code_moments", "code_lr", "backdrop_code",
                  "mask_input"):
        old.pop(field)
    (tmp_path / "config.json").write_text(json.dumps(old))
    c = TrainConfig.from_json(tmp_path / "config.json")
    assert c.generator == "resnet" and c.warmup == 0
    assert (c.colour_head, c.lambda_mean, c.code_moments, c.code_lr, c.backdrop_code) == (False, 0.0, False, 1.0, "off")
    assert c.mask_input is False


def test_a_run_checkpointed_before_the_new_fields_resumes(tmp_path):
    """A checkpoint whose config lacks ``generator`` and ``warmup`` (written by an older version)
    resumes under a config with their defaults, and is refused when a new field really differs."""
    from histgan.train.checkpoint import load_checkpoint, save_checkpoint
    from histgan.errors import HistganError
    from histgan.data.synthetic import write_dataset
    from histgan.train.loop import fit

    data = tmp_path / "data"
    write_dataset(data, n_train=4, n_test=2, size=32, seed=0, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), steps=4)
    fit(c, progress=False)
    for path in (tmp_path / "run" / "checkpoints").glob("*.pt"):
        state = load_checkpoint(path)
        for field in ("generator", "warmup"):
            state["config"].pop(field)
        save_checkpoint(path, state)
    fit(c.replace(steps=8), resume=True, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 8
    with pytest.raises(HistganError, match="generator='resnet'"):
        fit(c.replace(steps=12, generator="unet"), resume=True, progress=False)


def test_reflect_padding_pads_every_3x3_conv_of_the_generator_and_keeps_the_parameters():
    """``padding="reflect"`` changes how the encoder, injection, fusion and decoder convs pad, not which
    parameters there are (so the same initialisation and state-dict names), and the default is zeros."""
    from histgan.networks.generator import Generator

    kw = dict(ngf=4, n_down=2, n_blocks=1, code_dim=5, bins=8, arch="unet")
    torch.manual_seed(0)
    zeros = Generator(**kw)
    torch.manual_seed(0)
    reflect = Generator(**kw, padding="reflect")
    assert Generator(**kw).padding == "zeros"
    convs = [m for m in reflect.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 2 + 1 + 2 + 2 + 2 * 1  # down ×2, inject, up ×2, fuse ×2, the residual block's two
    assert all(m.padding_mode == "reflect" or m.padding == (0, 0) for m in convs)  # residual blocks pad first
    sd_z, sd_r = zeros.state_dict(), reflect.state_dict()
    assert sd_z.keys() == sd_r.keys() and all(torch.equal(sd_z[k], sd_r[k]) for k in sd_z)
    x, h = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 8).softmax(-1)
    assert not torch.allclose(zeros(x, h), reflect(x, h))
    with pytest.raises(ValueError, match="padding must be 'zeros' or 'reflect'"):
        Generator(**kw, padding="circular")


def test_colour_head_starts_as_the_identity_and_then_shifts_each_channel():
    """``colour_head=True`` adds only the head's projection; with the other weights copied from a
    network without it, the output is the same (zero-initialised FiLM); a head that shifts one channel
    before the tanh moves that channel only, by tanh's law."""
    torch.manual_seed(0)
    kw = dict(ngf=4, n_down=1, n_blocks=1, code_dim=5, bins=8, arch="unet")
    plain, headed = Generator(**kw), Generator(**kw, colour_head=True)
    missing = headed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["head.proj.bias", "head.proj.weight"] and headed.head.proj.out_features == 6
    x, h = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8).softmax(-1)
    with torch.no_grad():
        assert torch.equal(headed(x, h), plain(x, h))
        headed.head.proj.bias[3 + 1] = 0.5  # β of the green channel
        z = plain.out[1](plain.out[0](_decoded(plain, x, h)))
        out = headed(x, h)
    assert torch.equal(out[:, [0, 2]], plain(x, h)[:, [0, 2]])
    assert torch.allclose(out[:, 1], torch.tanh(z[:, 1] + 0.5), atol=1e-6)
    assert Generator(**{**kw, "code_dim": 0}, colour_head=True).head is None  # unconditioned: nothing to apply


def test_histogram_moments_analytic_cases_and_gradient():
    """Counting histograms of known images: a constant channel has its bin's centre as mean and no
    spread; a channel half at one bin and half at another has their midpoint as mean and half their
    distance as spread; the mass need not be 1; an empty histogram gives zeros; float64 gradcheck."""
    from histgan.histogram import hard_histogram
    from histgan.networks.conditioning import histogram_moments

    k = 16
    centre = lambda j: -1 + (2 / k) * (j + 0.5)  # noqa: E731
    img = torch.empty(1, 3, 4, 4)
    img[:, 0] = centre(3)
    img[:, 1] = centre(12)
    img[:, 2, :2], img[:, 2, 2:] = centre(2), centre(10)
    m = histogram_moments(hard_histogram(img, bins=k))
    assert torch.allclose(m[0, :3], torch.tensor([centre(3), centre(12), (centre(2) + centre(10)) / 2]), atol=1e-6)
    assert torch.allclose(m[0, 3:], torch.tensor([0.0, 0.0, (centre(10) - centre(2)) / 2]), atol=1e-5)
    assert torch.allclose(histogram_moments(3.7 * hard_histogram(img, bins=k)), m, atol=1e-6)
    assert torch.equal(histogram_moments(torch.zeros(2, 3, k)), torch.zeros(2, 6))
    h = torch.rand(2, 3, k, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(histogram_moments, (h,))


def test_code_moments_append_the_histogram_moments_to_the_code():
    """``code_moments=True``: the code is the encoder's ``D`` learnt entries, then the six moments of the
    reference histogram, computed; every layer that reads the code reads ``D + 6`` entries."""
    from histgan.networks.conditioning import histogram_moments

    torch.manual_seed(0)
    kw = dict(ngf=4, n_down=1, n_blocks=1, code_dim=5, bins=8, colour_head=True)
    G = Generator(**kw, code_moments=True, injection="concat+film")
    x, h = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8).softmax(-1)
    code = G.encode(h)
    assert code.shape == (2, 11) and torch.equal(code[:, 5:], histogram_moments(h))
    assert torch.equal(code[:, :5], G.encoder_hist.net(h.flatten(1) * 8))
    assert G.inject[0].in_channels == 8 + 11 and G.head.proj.in_features == 11
    assert all(f.proj.in_features == 11 for f in G.film)
    ada = Generator(**kw, code_moments=True, injection="adain")
    assert all(f.proj.in_features == 11 for b in ada.middle for f in b.film)
    assert G(x, h).shape == x.shape and torch.equal(G(x, h), G(x, code=code))
    assert Generator(**kw).encode(h).shape == (2, 5)  # off: the learnt code only


def test_backdrop_descriptor_analytic():
    """Mean and standard deviation of each channel over the background, then "present" = 1: a
    background of two colours in equal parts has the midpoint as mean and half their distance as std;
    the foreground never counts; no background (or no mask) gives seven zeros."""
    from histgan.networks.conditioning import backdrop_descriptor

    img = torch.empty(2, 3, 4, 4)
    a, b, skin = torch.tensor([0.2, -0.4, 0.6]), torch.tensor([0.6, 0.0, -0.2]), torch.tensor([0.9, 0.9, 0.9])
    img[:, :, :, :2] = a[:, None, None]  # left half: colour a
    img[:, :, :, 2:] = b[:, None, None]  # right half: colour b
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1  # the top two rows are foreground...
    img[:, :, :2] = skin[:, None, None]  # ...with the skin's colour, which must not count
    mask[1] = 1  # the second image is all foreground
    d = backdrop_descriptor(img, mask)
    assert d.shape == (2, 7)
    assert torch.allclose(d[0, :3], (a + b) / 2) and torch.allclose(d[0, 3:6], (a - b).abs() / 2, atol=1e-5)
    assert d[0, 6] == 1 and torch.equal(d[1], torch.zeros(7))
    assert torch.equal(backdrop_descriptor(img, None), torch.zeros(2, 7))
    with pytest.raises(ValueError, match="fg_mask"):
        backdrop_descriptor(img, mask[:1])
    with pytest.raises(ValueError, match="images"):
        backdrop_descriptor(img[:, :2], mask)


def test_backdrop_code_ends_the_code_with_the_descriptor():
    """With a ``backdrop``, the code is the encoder's (with its moments), then the seven numbers of the
    backdrop descriptor (zeros when none is given). ``"everywhere"``: every layer that reads the code reads
    them; ``"middle"``: only the injection conv does, the decoder's FiLMs and the colour head read the colour
    part. The generator without one refuses a descriptor; a different backdrop changes the output."""
    torch.manual_seed(0)
    kw = dict(ngf=4, n_down=1, n_blocks=1, code_dim=5, bins=8, colour_head=True, code_moments=True)
    x, h = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8).softmax(-1)
    bd = torch.rand(2, 7)
    for mode, film_width, head_width in (("everywhere", 18, 18), ("decoder", 18, 11), ("middle", 11, 11)):
        G = Generator(**kw, backdrop=mode, injection="concat+film")
        code = G.encode(h, bd)
        assert G.code_width == 18 and code.shape == (2, 18) and torch.equal(code[:, 11:], bd)
        assert torch.equal(code[:, :11], G.encoder_hist(h))
        assert torch.equal(G.encode(h)[:, 11:], torch.zeros(2, 7))
        assert G.inject[0].in_channels == 8 + 18 and G.head.proj.in_features == head_width
        assert all(f.proj.in_features == film_width for f in G.film)
        with torch.no_grad():
            for film in [*G.film, G.head]:  # give the FiLMs a say (they start at zero)
                torch.nn.init.normal_(film.proj.weight, 0, 0.5)
            assert torch.equal(G(x, h, None, bd), G(x, code=code))
            assert (G(x, h, None, bd) - G(x, h)).abs().max() > 1e-4
            G.inject[0].weight[:, 8 + 11:] = 0  # the injection conv's backdrop taps
            moved = (G(x, h, None, bd) - G(x, h)).abs().max()
            assert (moved > 1e-4) if mode != "middle" else (moved == 0), mode  # "middle": nothing else reads it
            for film in G.film:
                film.proj.weight[:, 11:] = 0  # and the decoder FiLMs' backdrop columns
            moved = (G(x, h, None, bd) - G(x, h)).abs().max()
        assert (moved > 1e-4) if mode == "everywhere" else (moved == 0), mode  # only "everywhere": the head too
    assert all(b.film[0].proj.in_features == 18
               for b in Generator(**kw, backdrop="middle", injection="adain").middle)  # AdaIN's blocks: the middle
    with pytest.raises(ValueError, match="backdrop"):
        Generator(**kw).encode(h, bd)
    with pytest.raises(ValueError, match="backdrop must have shape"):
        G.encode(h, bd[:, :6])
    with pytest.raises(ValueError, match="middle-layer injection"):
        Generator(**kw, backdrop="middle", injection="film")
    with pytest.raises(ValueError, match="backdrop must be"):
        Generator(**kw, backdrop=True)
    assert not Generator(ngf=4, n_down=1, n_blocks=1, backdrop="middle").conditioned  # unconditioned: no code at all


def test_gated_backdrop_reaches_only_where_the_gate_opens():
    """``backdrop="gated"``: the decoder's FiLMs and the colour head read the colour part, every decoder
    level has a backdrop FiLM of its own (7 inputs, zero at the start) behind a 1 × 1-conv gate, eq (M1d).
    At the start only the injection conv reads the backdrop; once the backdrop FiLMs have a say, the output
    follows the backdrop, and with every gate shut (a large negative bias) it does not again; with the
    gates wide open the level's modulation is the plain sum of the two FiLMs."""
    torch.manual_seed(0)
    kw = dict(ngf=4, n_down=2, n_blocks=1, code_dim=5, bins=8, colour_head=True, code_moments=True)
    x, h = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 8).softmax(-1)
    bd, other = torch.rand(2, 7), torch.rand(2, 7)
    G = Generator(**kw, backdrop="gated", injection="concat+film")
    assert (G.code_width, G.film_width, G.head_width) == (18, 11, 11)
    assert len(G.gate) == len(G.film_backdrop) == 2 and all(f.proj.in_features == 7 for f in G.film_backdrop)
    assert [g.in_channels for g in G.gate] == [f.proj.out_features // 2 for f in G.film_backdrop] == [8, 4]
    with torch.no_grad():
        G.inject[0].weight[:, 16 + 11:] = 0  # the injection conv's backdrop taps: now nothing reads the backdrop
        assert torch.equal(G(x, h, None, bd), G(x, h, None, other))
        for film in G.film_backdrop:
            torch.nn.init.normal_(film.proj.weight, 0, 0.5)
        assert (G(x, h, None, bd) - G(x, h, None, other)).abs().max() > 1e-4
        for gate in G.gate:
            gate.bias.fill_(-1e4)  # every gate shut: sigmoid = 0 exactly in float32
        assert torch.equal(G(x, h, None, bd), G(x, h, None, other))
        # gates wide open: each level adds the two modulations, γ(c) f + β(c) + γ_b(d) f + β_b(d), which is
        # what "decoder" does with one FiLM over [c; d] whose backdrop columns are the backdrop FiLM's
        for gate in G.gate:
            gate.bias.fill_(1e4)
        D = Generator(**kw, backdrop="decoder", injection="concat+film")
        shared = {k: v for k, v in G.state_dict().items() if not k.startswith(("film.", "gate.", "film_backdrop."))}
        assert D.load_state_dict(shared, strict=False).unexpected_keys == []
        for film, own, back in zip(D.film, G.film, G.film_backdrop):
            film.proj.weight.copy_(torch.cat([own.proj.weight, back.proj.weight], dim=1))
            film.proj.bias.copy_(own.proj.bias + back.proj.bias)
        assert torch.allclose(G(x, h, None, bd), D(x, h, None, bd), atol=1e-5)
    assert Generator(**kw, backdrop="gated", injection="film").inject is None  # no middle layer: the gates alone
    assert Generator(**kw, backdrop="decoder").gate is None


def test_backdrop_training_terms(monkeypatch):
    """With ``backdrop_code`` and ``lambda_mean``, the step adds the backgrounds' mean-colour ΔE: for G's
    fake, its mean L*a*b* outside the input's mask against the reference photograph's outside its own
    (computed here from the images, with the backdrop dropout switched off)."""
    from histgan.losses import mean_colour_loss, masked_mean_lab
    from histgan.networks.generator import build_models
    from histgan.train import step as train_step_module

    monkeypatch.setattr(train_step_module, "BACKDROP_DROP", 0.0)
    torch.manual_seed(0)
    c = make_config("quick", variant="histgan_bi", backdrop_code="middle", lambda_mean=0.1, code_moments=True)
    models = build_models(c)
    opt = train_step_module.make_optimisers(models, c)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    m = torch.zeros(2, 1, 32, 32)
    m[:, :, 8:24, 8:24] = 1
    batch = {"x": x, "y": y, "x_mask": m, "y_mask": m.flip(-1).roll(4, -1)}
    G = copy.deepcopy(models["G"])  # the same weights and power-iteration state as the step's first call
    with torch.no_grad():
        from histgan.losses import masked_histogram
        from histgan.networks.conditioning import backdrop_descriptor
        fake = G(x, masked_histogram(y, batch["y_mask"], c.bins, c.bandwidth), None,
                 backdrop_descriptor(y, batch["y_mask"]))
        expected = mean_colour_loss(fake, (m == 0).float(), masked_mean_lab(y, (batch["y_mask"] == 0).float())).mean()
    losses = train_step_module.train_step(models, opt, batch, c, fast=False)
    assert {"mean_bg_y", "mean_bg_x", "mean_y", "mean_x"} <= set(losses)
    assert losses["mean_bg_y"] == pytest.approx(float(expected), rel=1e-4)
    off = make_config("quick", variant="histgan_bi", lambda_mean=0.1)
    torch.manual_seed(0)
    plain = build_models(off)
    assert "mean_bg_y" not in train_step_module.train_step(plain, train_step_module.make_optimisers(plain, off),
                                                           batch, off, fast=False)


def _decoded(G, x, h):
    """The decoder's last feature map (before the 7×7 output conv) of ``G(x, h)``, via a forward hook."""
    seen = {}
    handle = G.out[0].register_forward_hook(lambda m, i, o: seen.setdefault("f", i[0]))
    G(x, h)
    handle.remove()
    return seen["f"]


def test_encoder_sn_false_frees_only_the_histogram_encoders():
    """``encoder_sn=False``: no spectral norm and torch's default init in G's and F's histogram encoders;
    every other conv and linear layer (but FiLM) stays spectral-normalised and N(0, 0.02)."""
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    models = build_models(make_config("quick", variant="histgan_bi", encoder_sn=False))
    for name in ("G", "F"):
        net = models[name]
        free = {id(m) for m in net.encoder_hist.modules()} | {id(f.proj) for f in net.modules() if isinstance(f, FiLM)}
        layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        kept = [m for m in layers if id(m) not in free]
        assert kept and len(kept) < len(layers)
        for m in layers:
            assert parametrize.is_parametrized(m, "weight") == (id(m) not in free), (name, m)
        for m in kept:  # CycleGAN's init under the parametrisation: N(0, 0.02)
            assert float(m.parametrizations.weight.original.detach().std()) < 0.03, (name, m)
        first = models[name].encoder_hist.net[0]
        bound = 1 / first.in_features ** 0.5  # torch's default: U(−1/√fan_in, 1/√fan_in), std bound/√3
        w = first.weight.detach()
        assert float(w.abs().max()) <= bound and float(w.std()) > 0.5 * bound / 3 ** 0.5
    assert all(parametrize.is_parametrized(m, "weight") for m in build_models(make_config("quick", variant="histgan_bi"))
               ["G"].encoder_hist.net if isinstance(m, torch.nn.Linear))


def test_mask_input_is_a_fourth_channel_and_nothing_else():
    """``mask_input``: the first conv reads four channels, ``[x, 2 m − 1]``. With the mask channel's weights at
    zero the generator is the three-channel one with the same other weights (exactly); with them non-zero the
    mask changes the output. A missing, unexpected or misshapen mask is refused, naming what to pass."""
    torch.manual_seed(0)
    kw = dict(ngf=4, n_down=2, n_blocks=1, code_dim=5, bins=8, colour_head=True, code_moments=True, backdrop="gated")
    G, plain = Generator(**kw, mask_input=True), Generator(**kw)
    assert G.down[1].weight.shape == (4, 4, 7, 7) and plain.down[1].weight.shape == (4, 3, 7, 7)
    x, h = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 8).softmax(-1)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 6:10] = 1
    with torch.no_grad():
        state = G.state_dict()
        state["down.1.weight"] = state["down.1.weight"][:, :3]
        plain.load_state_dict(state)
        G.down[1].weight[:, 3] = 0
        assert torch.equal(G(x, h, mask=mask), plain(x, h))
        G.down[1].weight[:, 3] = 0.5
        assert (G(x, h, mask=mask) - G(x, h, mask=1 - mask)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="pass mask="):
        G(x, h)
    with pytest.raises(ValueError, match="without mask_input"):
        plain(x, h, mask=mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        G(x, h, mask=mask[:, :, :8])
    assert Generator(ngf=4, n_down=1, n_blocks=1, mask_input=True).down[1].in_channels == 4  # unconditioned too


@pytest.mark.parametrize("fast", [False, True])
def test_mask_input_training_gives_each_call_its_inputs_mask(fast):
    """In a step with ``mask_input`` every generator call reads the mask of the image it translates: G(x) and
    the cycle's F(G(x)) x's mask, G(y) (identity) and the cycle's G(F(y)) y's mask, and F's calls mirror
    them — recorded by a forward hook, in the batched (fast) and the textbook form of the step."""
    from histgan.networks.generator import build_models
    from histgan.train import step as S

    torch.manual_seed(0)
    c = make_config("quick", variant="histgan_bi", mask_input=True)
    models = build_models(c)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    mx, my = torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 32)
    mx[0, :, 8:24, 8:20], mx[1, :, 4:28, 10:14], my[0, :, 2:30, 12:16], my[1, :, 6:26, 4:16] = 1, 1, 1, 1
    seen = {"G": [], "F": []}
    for name in seen:
        models[name].register_forward_pre_hook(lambda mod, args, kwargs, name=name: seen[name].append(kwargs["mask"]),
                                               with_kwargs=True)
    S.train_step(models, S.make_optimisers(models, c), {"x": x, "y": y, "x_mask": mx, "y_mask": my}, c, fast=fast)

    def count(masks, of):  # how many images of the recorded calls got a mask of ``of``'s images
        return sum(any(torch.equal(m[i], k) for k in of) for m in masks for i in range(len(m)))
    # G: x's masks once (G(x)), y's twice (identity G(y), cycle G(F(y))); F the mirror image
    assert (count(seen["G"], mx), count(seen["G"], my)) == (2, 4)
    assert (count(seen["F"], my), count(seen["F"], mx)) == (2, 4)
    assert sum(len(m) for m in seen["G"] + seen["F"]) == 12  # nothing else was called
