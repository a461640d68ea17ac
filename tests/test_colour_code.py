"""The colour code as a latent space: mixing references, refining the code."""

import numpy as np
import pytest
import torch

from histgan import metrics as M
from histgan import colour_difference as CD
from histgan.colour_code import (mix_codes, mix_histograms, mix_weights, morph_path,
                                 per_image_loss, refine_codes, steered_code)
from histgan.config import make_config
from histgan.inference import Translator, colour_histogram, translate
from histgan.networks.generator import build_models
from histgan.data.synthetic import write_dataset
from histgan.train.loop import fit
from support import run_cli as _cli


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = make_config("quick", variant="histgan_bi", data="unused", run_dir="unused")
    models = build_models(config)
    return Translator(models["G"], models["F"], config, 0, torch.device("cpu"))


def _images(n, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_mix_weights_from_t_and_from_weights():
    assert mix_weights(0.3, 2) == pytest.approx((0.7, 0.3))
    assert mix_weights(0.0, 2) == (1.0, 0.0) and mix_weights(1, 2) == (0.0, 1.0)
    assert mix_weights([0.1, 0.2, 0.7], 3) == pytest.approx((0.1, 0.2, 0.7))  # 0.1 + 0.2 + 0.7 rounds, accepted


@pytest.mark.parametrize("mix, n, message", [
    (1.5, 2, "in \\[0, 1\\]"), (-0.1, 2, "in \\[0, 1\\]"), (0.5, 3, "exactly 2 references"),
    ([0.5, 0.5], 3, "2 weights for 3"), ([1.5, -0.5], 2, "non-negative"), ([0.5, 0.4], 2, "sum to 1"),
    ([float("nan"), 1.0], 2, "finite"), ([0.2, 0.2], 2, "not normalised"),
])
def test_mix_weights_rejects_bad_weights(mix, n, message):
    with pytest.raises(ValueError, match=message):
        mix_weights(mix, n)


def test_mix_zero_and_one_reproduce_single_reference_exactly(model):
    x = _images(2)
    a, b = _images(1, 1), _images(1, 2)
    for t, single in ((0.0, a), (1.0, b)):
        assert torch.equal(translate(x, [a[0], b[0]], model, mix=t, reference_mask="none"),
                           translate(x, single[0], model, reference_mask="none"))
    assert torch.equal(translate(x, ["#a07e56", "#203040", "#ffffff"], model, mix=[0, 1, 0]),
                       translate(x, "#203040", model))
    middle = translate(x, [a[0], b[0]], model, mix=0.5, reference_mask="none")
    assert (middle - translate(x, a[0], model, reference_mask="none")).abs().max() > 0


def test_code_and_histogram_mixtures_are_weighted_means(model):
    h = [colour_histogram(c, model.config.bins).unsqueeze(0) for c in ("#a07e56", "#203040")]
    w = (0.25, 0.75)
    assert torch.allclose(mix_histograms(h, w), 0.25 * h[0] + 0.75 * h[1])
    with torch.no_grad():
        assert torch.allclose(mix_codes(model.G, h, w), 0.25 * model.G.encode(h[0]) + 0.75 * model.G.encode(h[1]))
    frames = morph_path(model.G, _images(2), h[0], h[1], [0.0, 0.5, 1.0], mode="histogram")
    assert frames.shape == (3, 2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(frames[0], model.G(_images(2), h[0].expand(2, -1, -1)).clamp(-1, 1))
    with pytest.raises(ValueError, match="mode"):
        morph_path(model.G, _images(1), h[0], h[1], [0.5], mode="latent")


def test_translate_rejects_inconsistent_mix(model):
    x = _images(1)
    with pytest.raises(ValueError, match="need mix|several references need mix"):
        translate(x, ["#a07e56", "#203040"], model)
    with pytest.raises(ValueError, match="mix needs a list"):
        translate(x, "#a07e56", model, mix=0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        translate(x, ["#a07e56", "#203040"], model, mix=[0.5, 0.6])
    with pytest.raises(ValueError, match="refine must be"):
        translate(x, "#a07e56", model, refine=-1)


def test_refinement_lowers_the_loss_monotonically_and_keeps_the_weights(model):
    x, ref = _images(3), _images(3, 5)
    h = model.histogram(ref)
    before = {k: v.clone() for k, v in model.G.state_dict().items()}
    with torch.no_grad():
        code = model.G.encode(model.histogram(_images(3, 6)))  # start from another reference's code
    r = refine_codes(model.G, x, code, h, 25, lr=1e-3, bins=model.config.bins, record=(5, 25))  # eq (6) alone
    assert r.losses.shape == (26, 3) and set(r.codes) == {5, 25} and torch.equal(r.codes[25], r.code)
    assert bool((r.losses[1:] < r.losses[:-1]).all()), "a small step lowers every image's loss at every step"
    with_lab = refine_codes(model.G, x, code, h, 10, lr=1e-3, bins=model.config.bins, lambda_lab=0.01,
                            lab_target=M.reference_means(ref, None)[0].float())
    assert bool((with_lab.losses[1:] < with_lab.losses[:-1]).all()), "and with the mean-colour term"
    after = model.G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the network is frozen"
    assert all(p.grad is None for p in model.G.parameters())


def test_batched_refinement_equals_per_image_refinement(model):
    x, h = _images(3), model.histogram(_images(3, 7))
    with torch.no_grad():
        code = model.G.encode(model.histogram(_images(3, 8)))
    batch = refine_codes(model.G, x, code, h, 8, lr=0.05, bins=model.config.bins)
    for i in range(3):
        alone = refine_codes(model.G, x[i : i + 1], code[i : i + 1], h[i : i + 1], 8, lr=0.05, bins=model.config.bins)
        assert torch.allclose(alone.code, batch.code[i : i + 1], atol=1e-5)
        assert torch.allclose(alone.losses[:, 0], batch.losses[:, i], atol=1e-5)


def test_per_image_loss_is_eq6_per_image(model):
    from histgan.losses import colour_loss

    out, h = _images(2), model.histogram(_images(2, 9))
    per = per_image_loss(out, None, h, model.config.bins, None)
    assert per.shape == (2,) and torch.allclose(per.mean(), colour_loss(out, None, h, model.config.bins, None))


def test_refine_towards_a_colour_moves_the_mean_colour_closer(model):
    x = _images(2)
    target = "#c08060"
    lab = CD.rgb_to_lab(torch.tensor([0xC0, 0x80, 0x60]).float().reshape(1, 3, 1, 1) / 127.5 - 1).reshape(1, 3)
    dist = [float(np.linalg.norm(CD.mean_lab(translate(x, target, model, refine=n, input_mask="none"))
                                 - lab.double().numpy(), axis=1).mean()) for n in (0, 30)]
    assert dist[1] < dist[0]
    with pytest.raises(ValueError, match="steps"):
        refine_codes(model.G, x, torch.zeros(2, model.config.code_dim), model.histogram(x), 1.5)
    with pytest.raises(ValueError, match="lr"):
        refine_codes(model.G, x, torch.zeros(2, model.config.code_dim), model.histogram(x), 1, lr=0)
    code = steered_code(model, x, [model.histogram(_images(1, 4))], None, 0)
    assert code.shape == (2, model.config.code_dim)


# ---- the CLI --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("code")
    data = write_dataset(root / "synth", size=32, n_train=4, n_test=2, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(root / "run"), steps=2,
                    keep_checkpoints=0)
    return fit(c, progress=False), data


def test_cli_mix_and_refine(run, tmp_path, capsys):
    run_dir, data = run
    base = ["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png")]
    refs = ["--reference", str(data / "testB" / "y0000.png"), "--reference", str(data / "testB" / "y0001.png")]
    for name, extra in (("mix", [*refs, "--mix", "0.3"]), ("weights", [*refs, "--mix", "0.5,0.5"]),
                        ("refine", ["--color", "#a07e56", "--refine", "3"]),
                        ("both", [*refs, "--mix", "1", "--refine", "2"])):
        code, err = _cli(base + extra + ["--out", str(tmp_path / f"{name}.png")], capsys)
        assert code == 0, err
        assert (tmp_path / f"{name}.png").is_file()


@pytest.mark.parametrize("args, flag, message", [
    (["--mix", "1.5"], "--mix", "in \\[0, 1\\]"),
    (["--mix", "abc"], "--mix", "must be a number"),
    (["--mix", "0.5,0.6"], "--mix", "sum to 1"),
    (["--mix=-0.5,1.5"], "--mix", "non-negative"),
    (["--refine", "-2"], "--refine", ">= 0"),
    (["--refine", "x"], "--refine", ">= 0"),
    (["--input-mask", "/no/such/mask.png"], "--input-mask", "auto, none"),
])
def test_cli_bad_values_exit_2_naming_the_flag(run, args, flag, message, tmp_path, capsys):
    run_dir, data = run
    code, err = _cli(["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png"),
                      "--color", "#a07e56", "--out", str(tmp_path / "o.png"), *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert flag in err and __import__("re").search(message, err), err


@pytest.mark.parametrize("args, message", [
    (["--color", "#a07e56", "--mix", "0.5"], "--mix needs two or more --reference"),
    (["--reference", "A", "--reference", "B"], "several --reference need --mix"),
    (["--reference", "A", "--reference", "B", "--mix", "0.2,0.3,0.5"], "3 weights for 2"),
    (["--color", "#a07e56", "--input-mask", "none"], "--input-mask needs --refine"),
])
def test_cli_inconsistent_flags_exit_2_with_one_line(run, args, message, tmp_path, capsys):
    run_dir, data = run
    args = [str(data / "testB" / "y0000.png") if a == "A" else str(data / "testB" / "y0001.png") if a == "B" else a
            for a in args]
    code, err = _cli(["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png"),
                      "--out", str(tmp_path / "o.png"), *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


# ---- the book's measurements and slider ------------------------------------------------------------
def test_sample_pairs():
    from histgan.eval.colour_code_study import sample_pairs

    assert sample_pairs(2, 3, "all") == [(i, j) for i in range(2) for j in range(3)] == sample_pairs(2, 3, 99)
    some = sample_pairs(4, 4, 5, seed=1)
    assert len(set(some)) == 5 and some == sorted(some) and some == sample_pairs(4, 4, 5, seed=1)
    with pytest.raises(ValueError, match="pairs"):
        sample_pairs(4, 4, 0)


def test_morph_and_refinement_studies_on_a_tiny_run(run):
    from histgan.eval import colour_code_study as S
    from histgan.eval.results import load_eval_data
    from histgan.inference import load_run

    run_dir, data = run
    model, test_set = load_run(run_dir), load_eval_data(data)
    a, b = S.extreme_references(test_set)
    fg, _ = M.reference_means(test_set.ref, test_set.ref_mask)
    assert fg[a, 0] >= fg[b, 0]
    ms = S.morph_study(model, test_set, [0, 1], a, b, [0.0, 0.5, 1.0])
    for mode in S.MODES:
        r = ms[mode]
        assert r["frames"].shape[:2] == (3, 2) and r["steps"].shape == (2, 2) and r["delta_e_gt"].shape == (3, 2)
        # progress is the projection on the a → b segment: recompute it for one frame by hand
        d = ms["lab_b"] - ms["lab_a"]
        assert r["progress"][1, 0] == pytest.approx(float((r["lab"][1, 0] - ms["lab_a"]) @ d / (d @ d)))
    assert "code mixing" in S.morph_verdict(ms) and "| code |" in S.morph_table(ms)
    rs = S.refinement_study(model, test_set, S.sample_pairs(2, 2, 3), record=(1, 3))
    assert [r["step"] for r in rs["rows"]] == [0, 1, 3] and rs["losses"].shape == (4, 3)
    assert all(sum(r["grades"].values()) == pytest.approx(1.0) for r in rs["rows"])
    verdict = S.refinement_verdict(rs, goal_delta_e=1e9, max_ssim_drop=1e9)
    assert "the goal held" in verdict and "did not hold" in S.refinement_verdict(rs, goal_delta_e=-1.0)


def test_frame_slider_html():
    from histgan.book.frame_slider import frame_slider_html, png_data_uri

    uri = png_data_uri(torch.zeros(3, 4, 4))
    assert uri.startswith("data:image/png;base64,")
    page = frame_slider_html([uri, uri], ["t = 0", "t = 1"], caption="t")
    assert page.count("<script") == 2 and 'max="1"' in page and "t = 1" in page
    with pytest.raises(ValueError, match="one label per frame"):
        frame_slider_html([uri], ["a", "b"])


def test_refine_towards_a_histogram_file_api_and_cli(model, run, tmp_path, capsys):
    h = colour_histogram("#c08060", model.config.bins).numpy()
    x = _images(1)
    out = translate(x, h, model, refine=3, input_mask="none")
    assert out.shape == x.shape and not torch.equal(out, translate(x, h, model))
    run_dir, data = run
    np.save(tmp_path / "h.npy", colour_histogram("#c08060", 16).numpy())  # the quick preset's K = 16
    code, err = _cli(["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png"),
                      "--histogram", str(tmp_path / "h.npy"), "--refine", "2", "--out", str(tmp_path / "h.png")], capsys)
    assert code == 0 and (tmp_path / "h.png").is_file(), err


def test_edits_apply_to_the_mixed_code(run, tmp_path, capsys):
    from histgan.inference import load_run

    run_dir, data = run
    model = load_run(run_dir)
    x = _images(1)
    a, b = _images(1, 1)[0], _images(1, 2)[0]
    plain = translate(x, a, model, reference_mask="none")
    assert torch.equal(translate(x, [a, b], model, mix=0.0, reference_mask="none", edit={"lightness": 0.0}), plain)
    edited = translate(x, a, model, reference_mask="none", edit={"lightness": 10.0})
    assert torch.equal(translate(x, [a, b], model, mix=0.0, reference_mask="none", edit={"lightness": 10.0}), edited)
    assert not torch.equal(edited, plain)
    code, err = _cli(["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png"),
                      "--color", "#a07e56", "--refine", "1", "--edit", "redness=3", "--out", str(tmp_path / "e.png")],
                     capsys)
    assert code == 0 and (tmp_path / "e.png").is_file(), err
