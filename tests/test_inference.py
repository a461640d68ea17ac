"""Inference: load_run / Translator, translate on PIL and tensors, histogram and colour references, CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from histgan.train.checkpoint import save_checkpoint
from histgan.config import make_config
from histgan.data.image_files import load_image, load_mask
from histgan.errors import HistganError
from histgan.histogram import soft_histogram
from histgan.inference import Translator, colour_histogram, load_run, translate
from histgan.train.checkpoint import list_checkpoints
from histgan.data.synthetic import write_dataset
from histgan.train.loop import fit
from support import run_cli as _cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("inf") / "synth", size=32, n_train=6, n_test=2, progress=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path_factory.mktemp("inf") / "run"),
                    steps=8, keep_checkpoints=0)
    return fit(c, progress=False)


def test_load_run_and_translator(run, data):
    tr = load_run(run)
    assert isinstance(tr, Translator) and tr.step == 8 and tr.config.variant == "histgan_bi"
    assert not tr.G.training and tr.G.conditioned and tr.F.conditioned
    assert [p.name for p in list_checkpoints(run)] == ["step_000004.pt", "step_000008.pt"]
    assert load_run(run, checkpoint=4).step == 4 and load_run(run / "checkpoints" / "step_000004.pt").step == 4
    x = load_image(data / "testA" / "x0000.png").unsqueeze(0)
    ref = load_image(data / "testB" / "y0000.png").unsqueeze(0)
    out = tr(x, None, ref, None)
    assert out.shape == x.shape and float(out.abs().max()) <= 1
    other = tr(x, None, torch.full_like(ref, -0.9), None)
    assert (out - other).abs().max() > 1e-4  # the reference's colours change the output


def test_reference_mask_restricts_the_histogram(run, data):
    tr = load_run(run)
    ref = load_image(data / "testB" / "y0000.png").unsqueeze(0)
    mask = load_mask(data / "testB_mask" / "y0000.png").unsqueeze(0)
    assert 0 < float(mask.mean()) < 1
    assert torch.allclose(tr.histogram(ref, mask), soft_histogram(ref, tr.config.bins, mask=mask))
    x = load_image(data / "testA" / "x0000.png").unsqueeze(0)
    assert (tr(x, None, ref, mask) - tr(x, None, ref, None)).abs().max() > 0


def test_translator_reads_the_reference_backdrop_where_trained_to():
    """A generator built with ``backdrop_code`` gets the reference's backdrop descriptor from the
    Translator when the reference comes with a mask, and "no backdrop" (zeros) without one."""
    from histgan.losses import masked_histogram
    from histgan.networks.conditioning import backdrop_descriptor
    from histgan.networks.generator import build_models

    torch.manual_seed(0)
    c = make_config("quick", variant="histgan_bi", backdrop_code="middle")
    m = build_models(c)
    tr = Translator(m["G"], m["F"], c, 0, torch.device("cpu"))
    x, ref = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    h = masked_histogram(ref, mask, c.bins, c.bandwidth).expand(2, -1, -1)
    with torch.no_grad():
        want = m["G"](x, h, None, backdrop_descriptor(ref, mask).expand(2, -1)).clamp(-1, 1)
        assert torch.equal(tr(x, None, ref, mask), want)
        unmasked = m["G"](x, masked_histogram(ref, None, c.bins, c.bandwidth).expand(2, -1, -1)).clamp(-1, 1)
        assert torch.equal(tr(x, None, ref, None), unmasked)
        assert (tr(x, None, ref, mask) - m["G"](x, h).clamp(-1, 1)).abs().max() > 1e-5
        assert torch.equal(tr(x, h_ref=h[:1], backdrop=backdrop_descriptor(ref, mask)), want)
        # translate(): an image reference with a mask passes its backdrop, a colour passes none
        from histgan.inference import reference_inputs, translate
        h1, bd1 = reference_inputs(ref[0], tr, mask[0, 0])
        assert torch.equal(bd1, backdrop_descriptor(ref, mask)) and torch.allclose(h1, h[:1])
        assert torch.equal(translate(x, ref[0], tr, reference_mask=mask[0, 0]), want)
        assert reference_inputs("#a07e56", tr)[1] is None
        # several references mixed: each code carries its own backdrop, so weights (1, 0) give the first's translation
        other = torch.rand(3, 32, 32) * 2 - 1
        assert torch.equal(translate(x, [ref[0], other], tr, reference_mask=mask[0, 0], mix=0.0), want)
        assert not torch.equal(translate(x, [ref[0], other], tr, reference_mask=mask[0, 0], mix=1.0), want)
        assert reference_inputs(ref[0], tr, "none")[1] is None


def test_translate_pil_tensor_histogram_and_colour(run, data):
    tr = load_run(run)
    pil = Image.open(data / "testA" / "x0000.png")
    out = translate(pil, Image.open(data / "testB" / "y0000.png"), tr, reference_mask="none")
    assert isinstance(out, Image.Image) and out.size == pil.size and out.mode == "RGB"
    x = load_image(data / "testA" / "x0000.png")
    h = colour_histogram("#a07e56", tr.config.bins)
    by_hist = translate(x, h.numpy(), tr)
    assert by_hist.shape == x.shape
    assert torch.equal(by_hist, translate(x, "#a07e56", run))  # a hex colour is its one-pixel histogram
    batch = translate(x.unsqueeze(0).repeat(2, 1, 1, 1), "a07e56", tr)
    assert batch.shape == (2, 3, 32, 32)


def test_colour_histogram_analytic():
    # R = 160 → 160/127.5 − 1 = 0.255 → bin floor((0.255 + 1) · 16 / 2) = 10 of 16
    h = colour_histogram("#a07e56", 16)
    assert h.shape == (3, 16) and int(h[0].argmax()) == 10
    z = torch.tensor([160, 126, 86]) / 127.5 - 1  # the sum telescopes to σ((1 − z)/B) − σ((−1 − z)/B), B = 1/8
    assert torch.allclose(h.sum(1), torch.sigmoid((1 - z) * 8) - torch.sigmoid((-1 - z) * 8), atol=1e-6)


def test_bad_references(run):
    tr = load_run(run)
    x = torch.zeros(3, 32, 32)
    with pytest.raises(ValueError, match="hex"):
        translate(x, "#12345", tr)
    with pytest.raises(ValueError, match=r"\(3, 16\)"):
        translate(x, np.ones((3, 8)) / 8, tr)
    with pytest.raises(ValueError, match="non-negative"):
        translate(x, -np.ones((3, 16)), tr)
    with pytest.raises(ValueError, match="x must be"):
        translate(torch.zeros(4, 4), "#a07e56", tr)
    with pytest.raises(ValueError, match="reference"):
        tr(x.unsqueeze(0))


def test_load_run_errors(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="step_000099"):
        load_run(run, checkpoint=99)
    save_checkpoint(tmp_path / "other.pt", {"step": 1})
    with pytest.raises(HistganError, match="not a histgan training checkpoint"):
        load_run(tmp_path / "other.pt")


def test_cli_translate(run, data, tmp_path, capsys):
    base = ["translate", "--checkpoint", str(run), "--input", str(data / "testA" / "x0000.png"), "--out"]
    code, err = _cli(base + [str(tmp_path / "a.png"), "--reference", str(data / "testB" / "y0000.png"),
                             "--reference-mask", str(data / "testB_mask" / "y0000.png")], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "a.png").size == (32, 32)
    np.save(tmp_path / "h.npy", colour_histogram("#a07e56", 16).numpy())
    code, err = _cli(base + [str(tmp_path / "b.png"), "--histogram", str(tmp_path / "h.npy")], capsys)
    assert code == 0, err
    code, err = _cli(base + [str(tmp_path / "c.png"), "--color", "#a07e56"], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.asarray(Image.open(tmp_path / "c.png")))


def test_cli_translate_bad_arguments(run, data, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.ones((3, 5)))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    small = tmp_path / "small.png"
    Image.new("L", (16, 16), 255).save(small)
    x = str(data / "testA" / "x0000.png")
    y = str(data / "testB" / "y0000.png")
    out = str(tmp_path / "o.png")
    cases = [
        (["--checkpoint", str(tmp_path / "none"), "--input", x, "--color", "#a07e56"], "none"),
        (["--checkpoint", str(run), "--input", str(tmp_path / "missing.png"), "--color", "#a07e56"], "missing.png"),
        (["--checkpoint", str(run), "--input", x, "--color", "brown"], "hex"),
        (["--checkpoint", str(run), "--input", x, "--histogram", str(tmp_path / "wrong.npy")], "(3, 16)"),
        (["--checkpoint", str(run), "--input", x, "--histogram", str(tmp_path / "bad.npy")], "bad.npy"),
        (["--checkpoint", str(run), "--input", x, "--histogram", str(tmp_path / "no.npy")], "no.npy"),
        (["--checkpoint", str(run), "--input", x, "--reference", y, "--reference-mask", str(small)], "small.png"),
        (["--checkpoint", str(run), "--input", x, "--color", "#a07e56", "--reference", y], "not allowed"),
        (["--checkpoint", str(run), "--input", x, "--color", "#a07e56", "--size", "30"], "divisible"),
        (["--checkpoint", str(run), "--input", x], "one of the arguments"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--checkpoint", str(run), "--input", x, "--color", "#a07e56", "--device", "cuda"], "CUDA"))
    for args, message in cases:
        code, err = _cli(["translate", *args, "--out", out], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "o.png").exists()


def test_a_run_trained_with_mask_input_reads_the_inputs_mask(data, tmp_path, capsys):
    """A ``mask_input`` run (with a gated backdrop code): the Translator refuses a call without the input's
    mask, naming it; with it, the output is G's with ``mask=``. ``translate()`` takes the mask from
    ``input_mask`` ("none": all foreground), and the CLI's ``--input-mask`` from a file, with the reference's
    backdrop (the PNG it writes is the Translator's output, rounded)."""
    from histgan.images import to_uint8
    from histgan.losses import masked_histogram
    from histgan.networks.conditioning import backdrop_descriptor

    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), steps=2,
                    mask_input=True, backdrop_code="gated", code_moments=True, colour_head=True)
    tr = load_run(fit(c, progress=False))
    assert tr.reads_mask and not load_run(fit(make_config("quick", variant="cyclegan", data=str(data), steps=1,
                                                          run_dir=str(tmp_path / "plain")), progress=False)).reads_mask
    x = load_image(data / "testA" / "x0000.png").unsqueeze(0)
    x_mask = load_mask(data / "testA_mask" / "x0000.png").reshape(1, 1, 32, 32)
    ref = load_image(data / "testB" / "y0000.png").unsqueeze(0)
    ref_mask = load_mask(data / "testB_mask" / "y0000.png").reshape(1, 1, 32, 32)
    with pytest.raises(HistganError, match="mask_input.*x_mask"):
        tr(x, None, ref, ref_mask)
    out = tr(x, x_mask, ref, ref_mask)
    with torch.no_grad():
        h = masked_histogram(ref, ref_mask, c.bins, c.bandwidth)
        assert torch.equal(out, tr.G(x, h, None, backdrop_descriptor(ref, ref_mask), mask=x_mask).clamp(-1, 1))
        assert (out - tr(x, 1 - x_mask, ref, ref_mask)).abs().max() > 0  # the mask is read
    assert torch.equal(translate(x, ref, tr, reference_mask=ref_mask[0, 0], input_mask=x_mask[0, 0]), out)
    assert torch.equal(translate(x, ref, tr, reference_mask=ref_mask[0, 0], input_mask="none"),
                       tr(x, torch.ones_like(x_mask), ref, ref_mask))
    code, err = _cli(["translate", "--checkpoint", c.run_dir, "--input", str(data / "testA" / "x0000.png"),
                      "--input-mask", str(data / "testA_mask" / "x0000.png"), "--out", str(tmp_path / "o.png"),
                      "--reference", str(data / "testB" / "y0000.png"),
                      "--reference-mask", str(data / "testB_mask" / "y0000.png")], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png").convert("RGB")), to_uint8(out[0]))
