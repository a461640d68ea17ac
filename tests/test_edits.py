"""Edit directions in the colour code's space: identity, commutativity, recovery, gradients, files, CLI."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from histgan.config import make_config
from histgan.eval.edit_measures import (
    accuracy, accuracy_table, commutativity, commutativity_table, describe,
    direction_alignment, alignment_table,
)
from histgan.edit_fitting import fit_linear, fit_rbf, whitening
from histgan.edits import (
    ATTRIBUTES, DIRECTIONS_FILE, EditDirections, apply_edits, check_edit, directions_for, load_directions,
    rbf_gradient, rbf_value, save_directions,
)
from histgan.errors import HistganError
from histgan.inference import load_run, translate
from histgan.data.synthetic import write_dataset
from histgan.train.loop import fit
from support import run_cli as _cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("edits") / "synth", size=32, n_train=6, n_test=2, progress=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path_factory.mktemp("edits") / "run"),
                    steps=4, keep_checkpoints=0)
    return fit(c, progress=False)


def _random_directions(d: int = 5, m: int = 7, seed: int = 0) -> EditDirections:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return EditDirections(linear=r(3, d), centres=r(m, d), alpha=r(3, m) * 5, gamma=torch.tensor([0.3, 0.5, 0.2]).double(),
                          bias=r(3), rbf_r2=torch.ones(3).double(), whiten=torch.eye(d).double(), step_size=0.05,
                          step=0, encoder="", n_references=m)


def test_zero_edit_is_the_identity_exactly():
    d = _random_directions()
    z = torch.randn(4, 5)
    for method in ("linear", "rbf"):
        assert torch.equal(apply_edits(z, {"lightness": 0.0, "redness": 0}, d, method), z)
        assert torch.equal(apply_edits(z, None, d, method), z)


def test_linear_edits_commute_up_to_rounding_rbf_measured():
    d = _random_directions()
    z = torch.randn(16, 5)
    a, b = {"lightness": 10.0}, {"redness": -3.0}
    ab = apply_edits(apply_edits(z, a, d), b, d)
    ba = apply_edits(apply_edits(z, b, d), a, d)
    # (z + a w_A) + b w_B against (z + b w_B) + a w_A: float addition is commutative, only the
    # rounding of the intermediate sums differs — a few units in the last place of the result.
    ulp = torch.finfo(torch.float32).eps * (z.abs() + 10 * d.linear.abs().max() + 3 * d.linear.abs().max())
    assert bool(((ab - ba).abs() <= 2 * ulp).all())
    # The same sum in one call equals the sequence up to the same rounding; against the float64 sum too.
    exact = z.double() + 10 * d.linear[0] - 3 * d.linear[1]
    assert bool(((ab.double() - exact).abs() <= 2 * ulp.double()).all())
    # The RBF path is curved: its order gap is measured, not assumed zero.
    rab = apply_edits(apply_edits(z, a, d, "rbf"), b, d, "rbf")
    rba = apply_edits(apply_edits(z, b, d, "rbf"), a, d, "rbf")
    gap = float((rab - rba).norm(dim=1).mean())
    assert math.isfinite(gap) and gap > 0.0


def test_linear_fit_recovers_a_planted_relation_holding_others_fixed():
    g = torch.Generator().manual_seed(1)
    n, dim = 200, 6
    lightness = torch.randn(n, generator=g, dtype=torch.float64) * 15
    # Correlated attributes, as on the Monk scale: darker skin is also redder and yellower.
    redness = -0.3 * lightness + torch.randn(n, generator=g, dtype=torch.float64)
    yellowness = -0.4 * lightness + 0.5 * redness + torch.randn(n, generator=g, dtype=torch.float64)
    attrs = torch.stack([lightness + 60, redness + 12, yellowness + 20], 1)
    w_true = torch.randn(3, dim, generator=g, dtype=torch.float64)
    codes = torch.randn(dim, generator=g, dtype=torch.float64) + attrs @ w_true
    w = fit_linear(codes, attrs)
    assert torch.allclose(w, w_true, atol=1e-6)
    # With noise on the codes, still close.
    noisy = codes + 0.01 * torch.randn(n, dim, generator=g, dtype=torch.float64)
    assert torch.allclose(fit_linear(noisy, attrs), w_true, atol=0.01)
    # Regressing on lightness alone would mix in the redness and yellowness that come with it.
    a = attrs[:, :1] - attrs[:, :1].mean()
    single = (a.T @ (codes - codes.mean(0))) / (a.T @ a)
    assert float((single[0] - w_true[0]).norm()) > 0.1 * float(w_true[0].norm())


def test_linear_fit_needs_enough_references():
    with pytest.raises(HistganError, match="at least 5 references"):
        fit_linear(torch.randn(4, 3), torch.randn(4, 3))


def test_rbf_gradient_matches_autograd_and_finite_differences():
    d = _random_directions()
    z = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    grad = rbf_gradient(z.detach(), d)
    for k in range(3):
        (auto,) = torch.autograd.grad(rbf_value(z, d)[:, k].sum(), z)
        assert torch.allclose(grad[:, k], auto, atol=1e-12, rtol=1e-10)
    eps = 1e-6
    for j in range(5):
        e = torch.zeros(5, dtype=torch.float64)
        e[j] = eps
        fd = (rbf_value(z.detach() + e, d) - rbf_value(z.detach() - e, d)) / (2 * eps)
        assert torch.allclose(grad[:, :, j], fd, atol=1e-7)
    assert torch.autograd.gradcheck(lambda t: rbf_value(t, d), (z,))


def test_rbf_fit_and_walk_reach_the_requested_prediction():
    g = torch.Generator().manual_seed(2)
    codes = torch.randn(120, 4, generator=g, dtype=torch.float64)
    attrs = torch.stack([10 * torch.tanh(codes[:, 0]) + 50, 3 * codes[:, 1], 2 * codes[:, 2] + codes[:, 0]], 1)
    rbf = fit_rbf(codes, attrs, centres=40)
    assert bool((rbf["r2"] > 0.9).all()), rbf["r2"]
    d = EditDirections(torch.zeros(3, 4).double(), rbf["centres"], rbf["alpha"], rbf["gamma"], rbf["bias"],
                       rbf["r2"], whitening(codes), 0.02, 0, "", 120)
    z = codes[:5].float()
    moved = apply_edits(z, {"lightness": 2.0}, d, "rbf")
    change = rbf_value(moved, d) - rbf_value(z, d)
    assert torch.allclose(change[:, 0], torch.full((5,), 2.0, dtype=torch.float64), atol=0.01)
    assert bool((change[:, 1:].abs() < 0.05).all())  # the others are held


def test_check_edit_rejects_bad_input():
    assert check_edit({"lightness": 10, "redness": -3.5}) == {"lightness": 10.0, "redness": -3.5}
    for bad, message in [({"foo": 1}, "unknown attribute"), ({"lightness": "abc"}, "finite number"),
                         ({"lightness": float("nan")}, "finite number"), ([("lightness", 1)], "must map")]:
        with pytest.raises(ValueError, match=message):
            check_edit(bad)
    with pytest.raises(ValueError, match="edit method"):
        apply_edits(torch.zeros(1, 5), {"lightness": 1}, _random_directions(), "curved")


def test_directions_file_round_trip_and_errors(tmp_path):
    d = _random_directions()
    save_directions(d, tmp_path / DIRECTIONS_FILE)
    back = load_directions(tmp_path / DIRECTIONS_FILE)  # weights_only=True inside
    for name in ("linear", "centres", "alpha", "gamma", "bias"):
        assert torch.equal(getattr(back, name), getattr(d, name))
    assert back.step_size == d.step_size and back.step == d.step
    with pytest.raises(FileNotFoundError, match="histgan edits fit"):
        load_directions(tmp_path / "none" / DIRECTIONS_FILE)
    torch.save({"format": "histgan-edit-directions/1", "linear": d.linear}, tmp_path / "old.pt")
    with pytest.raises(HistganError, match="older version"):
        load_directions(tmp_path / "old.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a file")
    with pytest.raises(HistganError, match="histgan edits fit"):
        load_directions(tmp_path / "bad.pt")


def test_directions_for_fits_once_and_translate_edits(run, data):
    model = load_run(run)
    d = directions_for(model)
    assert (run / DIRECTIONS_FILE).is_file() and d.n_references == 6 * 5 and d.linear.shape == (3, model.config.code_dim)
    stamp = (run / DIRECTIONS_FILE).stat().st_mtime_ns
    again = directions_for(model)
    assert torch.equal(again.linear, d.linear) and (run / DIRECTIONS_FILE).stat().st_mtime_ns == stamp
    # Another encoder (a retrained run): the stored directions are refitted, not reused.
    with torch.no_grad():
        model.G.encoder_hist.net[0].bias.add_(0.5)
    other = directions_for(model)
    assert not torch.equal(other.linear, d.linear) and load_directions(run / DIRECTIONS_FILE).encoder == other.encoder
    (run / DIRECTIONS_FILE).write_bytes(b"damaged")  # a damaged cache is refitted, not an error
    assert torch.equal(directions_for(model).linear, other.linear)
    model = load_run(run)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    plain = translate(x, "#a07e56", model)
    assert torch.equal(translate(x, "#a07e56", model, edit={"lightness": 0.0}), plain)
    for method in ("linear", "rbf"):
        out = translate(x, "#a07e56", model, edit={"lightness": 10.0, "redness": -3.0}, edit_method=method)
        assert out.shape == plain.shape and bool(torch.isfinite(out).all()) and not torch.equal(out, plain)


def test_missing_directions_without_data_say_what_to_run(run, tmp_path):
    model = load_run(run)
    model.run_dir = tmp_path  # no directions here, and the run's data will not be looked for
    model.config = make_config("quick", variant="histgan_bi", data=str(tmp_path / "gone"))
    with pytest.raises(HistganError, match="histgan edits fit"):
        directions_for(model)


def test_measures_on_a_tiny_run(run, data):
    model = load_run(run)
    d = directions_for(model)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.ones(2, 1, 32, 32)
    code = model.G.encode(model.histogram(x)).detach()
    rows = accuracy(model, d, x, mask, code, {"lightness": [-5, 0, 5], "redness": [-2, 0, 2]}, references=(x, mask))
    assert len(rows) == 6 and all(math.isfinite(r["slope"]) for r in rows)
    assert [r["method"] for r in rows][-2:] == ["shifted reference"] * 2
    assert "| linear | lightness |" in accuracy_table(rows)
    comm = commutativity(model, d, x, code, mask, {"lightness": 10.0, "redness": 4.0})
    linear = [r for r in comm if r["method"] == "linear"][0]
    assert linear["delta_e"] < 1e-3 and linear["code_gap"] < 1e-5
    align = direction_alignment(model, d, x, mask, "lightness", 10.0)
    assert set(align) == {"linear", "rbf gradient", "rbf gradient, covariance metric"}
    assert all(-1.0 - 1e-9 <= v <= 1.0 + 1e-9 for v in align.values())
    assert alignment_table({"lightness": align}, d).count("\n") == 2
    text = describe(rows, comm)
    assert "Linear edits commute" in text and "{" not in text
    table = commutativity_table(comm)
    assert table.splitlines()[0] == "| method | lightness +10, redness +4 |" and "| rbf | " in table


def test_cli_edit_and_fit(run, data, tmp_path, capsys):
    code, err = _cli(["edits", "fit", str(run), "--augment", "1"], capsys)
    assert code == 0, err
    assert load_directions(run / DIRECTIONS_FILE).n_references == 12
    base = ["translate", "--checkpoint", str(run), "--input", str(data / "testA" / "x0000.png"), "--color", "#a07e56"]
    code, err = _cli(base + ["--out", str(tmp_path / "a.png"), "--edit", "lightness=0"], capsys)
    assert code == 0, err
    code, err = _cli(base + ["--out", str(tmp_path / "b.png")], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    code, err = _cli(base + ["--out", str(tmp_path / "c.png"), "--edit", "lightness=+10", "--edit", "redness=-3",
                             "--edit-method", "rbf"], capsys)
    assert code == 0, err and (tmp_path / "c.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--edit", "foo=1"], "unknown attribute"),
    (["--edit", "lightness"], "NAME=VALUE"),
    (["--edit", "lightness=abc"], "must be a number"),
    (["--edit", "lightness=nan"], "finite"),
    (["--edit-method", "curved"], "invalid choice"),
])
def test_cli_bad_edit_values_exit_2_naming_the_flag(args, message, tmp_path, capsys):
    flag = args[0]
    code, err = _cli(["translate", "--checkpoint", str(tmp_path), "--input", "x.png", "--color", "#a07e56",
                      "--out", str(tmp_path / "o.png"), *args], capsys)
    assert code == 2 and flag in err and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_edits_fit_errors(tmp_path, capsys):
    code, err = _cli(["edits", "fit", str(tmp_path / "none")], capsys)
    assert code == 2 and "none" in err and len(err.strip().splitlines()) == 1, err
    code, err = _cli(["edits", "fit", str(tmp_path), "--augment", "0"], capsys)
    assert code == 2 and "--augment" in err, err


def test_attribute_names_are_the_lab_channels_in_order():
    assert ATTRIBUTES == ("lightness", "redness", "yellowness")
