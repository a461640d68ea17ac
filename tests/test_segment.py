"""The skin segmenter (histgan.train.masker), its augmentation, and references without masks (reference_mask, CLI)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import histgan.train.masker as segment
from histgan.cli import main
from histgan.errors import HistganError
from histgan.inference import Translator, load_run, translate
from histgan.reference_mask import masked_reference_root, resolve_reference_mask
from histgan.train.masker import MASKER_DIRNAME, Masker, fit_masker, load_masker, masker_iou, predict_mask
from histgan.train.masker_augment import _hue_rotation, augment, colour_jitter

TINY = dict(batch_size=8, size=32, width=6, levels=2, lr=5e-3)  # ~9k parameters


def _disc_image(rng: np.random.Generator, size: int, textured: bool) -> tuple[np.ndarray, np.ndarray]:
    """A skin-toned shaded disc on a flat (training) or striped, noisy (test) background; uint8 image, mask."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    (cy, cx), r = rng.uniform(0.35, 0.65, 2) * size, rng.uniform(0.25, 0.4) * size
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    skin = np.array([0.85, 0.62, 0.5]) * rng.uniform(0.6, 1.1)
    shade = 1 - 0.3 * ((xx - cx + r) / (2 * r)).clip(0, 1)
    while True:  # background colours far from the skin's
        c1, c2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        if min(np.abs(c - skin).sum() for c in (c1, c2)) > 0.6:
            break
    if textured:
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * rng.uniform(-0.3, 0.3) + yy * rng.uniform(-0.3, 0.3)))
        bg = c1 + (c2 - c1) * t[..., None] + rng.normal(0, 0.05, (size, size, 3))
    else:
        bg = np.broadcast_to(c1, (size, size, 3))
    img = np.where(mask[..., None], skin * shade[..., None], bg)
    return (img.clip(0, 1) * 255).astype(np.uint8), (mask * 255).astype(np.uint8)


def _disc_set(root, n_train=48, n_test=12, size=32, seed=0):
    rng = np.random.default_rng(seed)
    for folder, n, textured in (("trainB", n_train, False), ("testB", n_test, True)):
        for d in (folder, f"{folder}_mask"):
            (root / d).mkdir(parents=True)
        for i in range(n):
            img, mask = _disc_image(rng, size, textured)
            Image.fromarray(img).save(root / folder / f"y{i:04d}.png")
            Image.fromarray(mask).save(root / f"{folder}_mask" / f"y{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def discs(tmp_path_factory):
    return _disc_set(tmp_path_factory.mktemp("seg") / "discs")


@pytest.fixture(scope="module")
def masker_run(discs, tmp_path_factory):
    torch.set_num_threads(1)
    return fit_masker(discs, tmp_path_factory.mktemp("seg") / "masker", steps=400, seed=0, device="cpu",
                      progress=False, **TINY)


def test_masker_shapes_and_range():
    torch.manual_seed(0)
    m = Masker()
    assert 20_000 < sum(p.numel() for p in m.parameters()) < 80_000  # "a few tens of thousands"
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 1, 64, 64)
    for shape in [(3, 37, 50), (2, 3, 100, 64), (1, 3, 8, 8)]:
        pred = predict_mask(m, torch.rand(shape) * 2 - 1)
        assert pred.shape == (1 if len(shape) == 3 else shape[0], 1, *shape[-2:])
        assert set(pred.unique().tolist()) <= {0.0, 1.0}
    assert m.training  # predict_mask restores the mode it found
    with pytest.raises(HistganError, match="images"):
        predict_mask(m, torch.zeros(2, 4, 8, 8))


def test_config_rejects_bad_values(discs, tmp_path):
    with pytest.raises(HistganError, match="size 30 must be divisible"):
        fit_masker(discs, tmp_path / "m", steps=2, size=30)
    with pytest.raises(HistganError, match="steps"):
        fit_masker(discs, tmp_path / "m", steps=0)
    with pytest.raises(HistganError, match="trainB_mask"):
        fit_masker(tmp_path, tmp_path / "m", steps=2)


def test_hue_rotation_is_a_turn_about_the_grey_axis():
    R = _hue_rotation(torch.tensor([2 * math.pi / 3, 0.7]))
    # a third of a turn about (1, 1, 1) maps red → green → blue; grey stays grey for every angle
    assert torch.allclose(R[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    assert torch.allclose(R[1] @ torch.full((3,), 0.4), torch.full((3,), 0.4), atol=1e-6)
    assert torch.allclose(R[1] @ R[1].T, torch.eye(3), atol=1e-6)


def test_augment_is_a_function_of_the_seed_and_keeps_masks_binary():
    x, m = torch.rand(4, 3, 32, 32) * 2 - 1, (torch.rand(4, 1, 32, 32) > 0.5).float()
    a = augment(x, m, torch.Generator().manual_seed(3))
    b = augment(x, m, torch.Generator().manual_seed(3))
    c = augment(x, m, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert a[0].shape == x.shape and a[0].abs().max() <= 1 and set(a[1].unique().tolist()) <= {0.0, 1.0}
    grey = torch.zeros(1, 3, 8, 8)  # grey stays grey under hue and saturation changes
    out = colour_jitter(grey, torch.Generator().manual_seed(0), noise=0.0)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)


def test_tiny_masker_separates_skin_disc_from_texture(masker_run, discs):
    masker = load_masker(masker_run)
    assert masker_iou(masker, discs) >= 0.9  # held-out discs on striped, noisy backgrounds it never saw
    metrics = (masker_run / "metrics.json").read_text()
    assert '"iou_testB"' in metrics and (masker_run / "config.json").is_file()


def test_checkpoint_loads_with_weights_only(masker_run):
    state = torch.load(masker_run / "checkpoints" / "latest.pt", weights_only=True)
    weights = state["state"]["model"]
    loaded = load_masker(masker_run).state_dict()
    assert all(torch.equal(weights[k], loaded[k]) for k in loaded)
    with pytest.raises(HistganError, match="python -m histgan masker"):
        load_masker(masker_run.parent / "nowhere")


def test_resume_after_interruption_matches_uninterrupted(discs, tmp_path, monkeypatch):
    kw = dict(steps=8, seed=1, device="cpu", progress=False, checkpoint_every=3, **TINY)
    fit_masker(discs, tmp_path / "whole", **kw)
    real, calls = segment.masker_loss, []

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(segment, "masker_loss", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        fit_masker(discs, tmp_path / "cut", **kw)
    monkeypatch.setattr(segment, "masker_loss", real)
    with pytest.raises(HistganError, match="--resume"):
        fit_masker(discs, tmp_path / "cut", **kw)
    fit_masker(discs, tmp_path / "cut", resume=True, **kw)
    a, b = load_masker(tmp_path / "whole").state_dict(), load_masker(tmp_path / "cut").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(HistganError, match="other settings"):
        fit_masker(discs, tmp_path / "cut", resume=True, **{**kw, "lr": 1e-3})


# ---- references without masks -----------------------------------------------------------------------
class _Exploding(Masker):
    def forward(self, x):
        raise AssertionError("the masker must not be called")


@pytest.fixture(scope="module")
def run(discs, tmp_path_factory):
    from histgan.config import make_config
    from histgan.data.synthetic import write_dataset
    from histgan.train.loop import fit

    data = write_dataset(tmp_path_factory.mktemp("seg") / "synth", size=32, n_train=4, n_test=2, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path_factory.mktemp("seg") / "r"),
                    steps=2, keep_checkpoints=0)
    return fit(c, progress=False), data


def test_auto_uses_alpha_without_calling_the_masker(run):
    run_dir, data = run
    tr = load_run(run_dir)
    rgb = Image.open(data / "testB" / "y0000.png").convert("RGB")
    alpha = Image.open(data / "testB_mask" / "y0000.png").convert("L")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    x = Image.open(data / "testA" / "x0000.png")
    out = translate(x, rgba, tr, masker=_Exploding())
    expected = translate(x, rgb, tr, reference_mask=alpha)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    assert not np.array_equal(np.asarray(out), np.asarray(translate(x, rgb, tr, reference_mask="none")))


def test_auto_uses_the_masker_or_says_how_to_train_one(run, masker_run, tmp_path):
    run_dir, data = run
    tr = load_run(run_dir)
    ref = torch.rand(1, 3, 32, 32) * 2 - 1
    with pytest.raises(HistganError, match="python -m histgan masker"):
        resolve_reference_mask("auto", ref, run_dir=run_dir)
    masker = load_masker(masker_run)
    assert torch.equal(resolve_reference_mask("auto", ref, masker=masker_run), predict_mask(masker, ref))
    found = Translator(tr.G, tr.F, tr.config, tr.step, tr.device, run_dir=masker_run.parent)
    assert masker_run.name == "masker" == MASKER_DIRNAME  # the run's own masker is found in RUN/masker/
    assert torch.equal(translate(ref[0], ref[0], found), translate(ref[0], ref[0], tr, masker=masker))
    with pytest.raises(HistganError, match="neither"):
        resolve_reference_mask(str(tmp_path / "missing.png"), ref)


def _cli(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def test_cli_reference_mask_values(run, masker_run, tmp_path, capsys):
    run_dir, data = run
    base = ["translate", "--checkpoint", str(run_dir), "--input", str(data / "testA" / "x0000.png")]
    bare = tmp_path / "ref.png"  # no alpha, no DIR_mask/ next to it
    Image.open(data / "testB" / "y0000.png").save(bare)
    bad = [(["--reference", str(bare), "--reference-mask", "bogus"], "must be auto, none"),
           (["--reference", str(bare)], "python -m histgan masker"),
           (["--color", "#a07e56", "--reference-mask", "none"], "need --reference"),
           (["--reference", str(bare), "--masker", str(tmp_path)], "no trained masker")]
    for args, message in bad:
        code, io = _cli(base + args + ["--out", str(tmp_path / "o.png")], capsys)
        assert code == 2 and message in io.err and len(io.err.strip().splitlines()) == 1, (args, io.err)
    assert not (tmp_path / "o.png").exists()
    for i, extra in enumerate([["--reference-mask", "none"], ["--masker", str(masker_run)],
                               ["--reference-mask", str(data / "testB_mask" / "y0000.png")]]):
        code, io = _cli(base + ["--reference", str(bare), *extra, "--out", str(tmp_path / f"{i}.png")], capsys)
        assert code == 0, io.err
    # by the dataset layout, testB/y0000.png's mask is testB_mask/y0000.png: auto finds it
    code, io = _cli(base + ["--reference", str(data / "testB" / "y0000.png"), "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0, io.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s.png")), np.asarray(Image.open(tmp_path / "2.png")))
    code, io = _cli(["evaluate", "--data", str(data), "--out", str(tmp_path), "--reference-mask", "bogus"], capsys)
    assert code == 2 and "must be auto, none" in io.err and len(io.err.strip().splitlines()) == 1


def test_evaluate_data_without_masks(run, masker_run, tmp_path):
    _, data = run
    bare = tmp_path / "bare"
    for d in ("testA", "testA_mask", "testB"):
        (bare / d).mkdir(parents=True)
        for p in (data / d).iterdir():
            (bare / d / p.name).write_bytes(p.read_bytes())
    assert masked_reference_root(data, tmp_path / "r0") == data  # testB_mask/ exists: nothing to do
    assert masked_reference_root(bare, tmp_path / "r1", "none") == bare
    with pytest.raises(HistganError, match="python -m histgan masker"):
        masked_reference_root(bare, tmp_path / "r2")
    view = masked_reference_root(bare, tmp_path / "r3", masker=masker_run)
    names = sorted(p.name for p in (bare / "testB").iterdir())
    assert sorted(p.name for p in (view / "testB_mask").iterdir()) == names
    assert (view / "testA").is_dir() and sorted(p.name for p in (tmp_path / "r3" / "reference_masks").iterdir()) == names


def test_cli_masker_trains_resumes_and_refuses_to_overwrite(discs, tmp_path, capsys):
    args = ["masker", "--data", str(discs), "--out", str(tmp_path / "m"), "--steps", "3", "--batch-size", "2",
            "--device", "cpu"]
    code, io = _cli(args, capsys)
    assert code == 0 and "IoU on testB" in io.out and "loss=" in io.err  # the bar shows the loss
    code, io = _cli(args, capsys)
    assert code == 2 and "--resume" in io.err and len(io.err.strip().splitlines()) == 1
    code, io = _cli(args[:5] + ["--steps", "4", "--batch-size", "2", "--device", "cpu", "--resume", "--no-progress"],
                    capsys)
    assert code == 0 and io.err == "" and load_masker(tmp_path / "m") is not None
    assert '"resumed_from_step": 3' in (tmp_path / "m" / "metrics.json").read_text()
    code, io = _cli(["masker", "--help"], capsys)
    assert code == 0 and "example: python -m histgan masker" in io.out


def test_resume_auto_starts_fresh_continues_and_leaves_a_finished_masker_alone(discs, tmp_path):
    """``resume="auto"`` (how the main job's parallel stage runs the masker): a fresh folder trains from
    step 0, a finished one is loaded and its checkpoint left byte-identical, and anything but
    True/False/"auto" is refused."""
    out = tmp_path / "m"
    fit_masker(discs, out, steps=4, seed=0, device="cpu", progress=False, resume="auto", checkpoint_every=2, **TINY)
    latest = (out / "checkpoints" / "latest.pt").read_bytes()
    metrics = (out / "metrics.json").read_text()
    assert '"resumed_from_step": 0' in metrics
    fit_masker(discs, out, steps=4, seed=0, device="cpu", progress=False, resume="auto", checkpoint_every=2, **TINY)
    assert (out / "checkpoints" / "latest.pt").read_bytes() == latest
    with pytest.raises(HistganError, match="resume must be True, False or 'auto'"):
        fit_masker(discs, tmp_path / "n", steps=4, progress=False, resume="yes", **TINY)


def test_predicted_reference_masks_replace_the_given_ones_only_for_the_model(masker_run):
    """evaluate.with_predicted_reference_masks hands the model the masker's masks; the images pass unchanged."""
    from histgan.eval.evaluate import with_predicted_reference_masks

    masker = load_masker(masker_run)
    seen = {}

    def model(x, x_mask, ref, ref_mask):
        seen["ref_mask"], seen["ref"] = ref_mask, ref
        return x

    ref = torch.rand(3, 3, 32, 32) * 2 - 1
    given = torch.zeros(3, 1, 32, 32)
    x = torch.rand(3, 3, 32, 32)
    out = with_predicted_reference_masks(model, masker)(x, torch.ones(3, 1, 32, 32), ref, given)
    assert out is x and seen["ref"] is ref
    assert torch.equal(seen["ref_mask"], predict_mask(masker, ref)) and seen["ref_mask"].sum() > 0
