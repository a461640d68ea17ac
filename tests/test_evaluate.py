"""Tests for histgan.eval.evaluate, histgan.eval.figures and ``python -m histgan evaluate`` on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from histgan.eval import evaluate as E
from histgan.eval.realism_sets import REALISM_METRICS
from histgan.eval.report import SHAPE_METRICS, markdown_table, write_report
from histgan.eval.results import EvalData, load_eval_data
from histgan.eval.baselines import flat_fill, reinhard
from histgan.cli import main
from histgan.errors import HistganError


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from histgan.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth"), size=32, n_train=2, n_test=3, seed=0, progress=False)


@pytest.fixture(scope="module")
def data(data_root) -> EvalData:
    return load_eval_data(data_root)


class _StandIn:
    """A stand-in 'trained' model: the input, tinted halfway to the reference's mean colour."""

    def __init__(self, variant: str, step: int = 0, strength: float = 0.5):
        self.config, self.step, self.strength = SimpleNamespace(variant=variant), step, strength

    def __call__(self, x, x_mask, ref, ref_mask):
        return (1 - self.strength) * x + self.strength * flat_fill(x, x_mask, ref, ref_mask)


def identity(x, x_mask, ref, ref_mask):
    return x


def test_evaluate_all_pairs_rows_and_summary(data):
    res = E.evaluate(identity, data, pairs="all", batch_size=4, progress=False)
    assert res.name == "identity" and len(res.pairs) == 9
    assert [(r["input"], r["reference"]) for r in res.pairs[:4]] == [
        (data.x_names[0], data.ref_names[0]), (data.x_names[0], data.ref_names[1]),
        (data.x_names[0], data.ref_names[2]), (data.x_names[1], data.ref_names[0])]  # input-major
    row = res.pairs[0]
    assert set(row) == {"input", "reference", "delta_e", "delta_e2000", "grade", *SHAPE_METRICS}
    # the identity keeps the input's shape exactly: SSIM of lightness vs the input is 1
    assert all(r["ssim_input_lum"] == pytest.approx(1.0, abs=1e-6) for r in res.pairs)
    s = res.summary
    assert s["n_pairs"] == 9 and sum(s["grades"].values()) == 9
    assert s["delta_e_mean"] == pytest.approx(np.mean([r["delta_e"] for r in res.pairs]))
    assert s["delta_e_std"] == pytest.approx(np.std([r["delta_e"] for r in res.pairs], ddof=1))
    assert s["delta_e_mean"] > 13 and s["grade_of_mean"] in ("D", "beyond D")  # a grey render is far from skin colour
    assert res.samples.out.shape == (3, 3, 3, 32, 32)


def test_evaluate_delta_e_matches_metrics_and_ground_truth(data, data_root):
    from histgan import colour_difference as CD
    from histgan import metrics as M
    from histgan.data.synthetic import ground_truth

    res = E.evaluate(flat_fill, data, pairs=2, progress=False, n_samples=0)
    assert len(res.pairs) == 4 and res.samples is None
    out = flat_fill(data.x[1:2], data.x_mask[1:2], data.ref[0:1], data.ref_mask[0:1])
    gt = torch.from_numpy(ground_truth(data_root, data.x_names[1], data.ref_names[0])).permute(2, 0, 1)[None]
    row = res.pairs[2]
    assert row["delta_e"] == CD.delta_e(out, data.ref[:1], data.x_mask[1:2], data.ref_mask[:1])[0]  # one code path
    assert row["delta_e"] < 1e-3  # flat fill meets the reference's mean colour
    assert row["psnr_gt"] == pytest.approx(M.psnr((out + 1) / 2, gt, value_range=(0, 1))[0], rel=1e-5)
    assert row["delta_e_gt"] == CD.delta_e((out + 1) / 2, gt, data.x_mask[1:2], data.x_mask[1:2], value_range=(0, 1))[0]


def test_evaluate_without_ground_truth(data):
    plain = EvalData(data.x, data.x_mask, data.x_names, data.ref, data.ref_mask, data.ref_names, root=None)
    res = E.evaluate(identity, plain, pairs=2, progress=False)
    assert "ssim_gt" not in res.pairs[0] and "iou" in res.pairs[0]
    assert "ssim_gt_mean" not in res.summary


@pytest.mark.parametrize("kwargs, error, match", [
    ({"pairs": 0}, ValueError, "pairs"),
    ({"pairs": "some"}, ValueError, "pairs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"device": "nonsense"}, HistganError, "device"),
    ({"realism": "yes"}, HistganError, "realism"),
])
def test_evaluate_bad_arguments(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        E.evaluate(identity, data, progress=False, **kwargs)


def test_evaluate_bad_models(data, tmp_path):
    from histgan.errors import HistganError

    with pytest.raises(HistganError, match="expected a tensor"):
        E.evaluate(lambda x, *a: x[:, :1], data, progress=False)
    with pytest.raises(ValueError, match="model output"):
        E.evaluate(lambda x, *a: x * 3, data, progress=False)
    with pytest.raises(FileNotFoundError):
        E.evaluate(tmp_path / "no_run", data, progress=False)
    with pytest.raises(FileNotFoundError):
        load_eval_data(tmp_path / "no_data")


def _parse_markdown(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert all(set(c) <= {"-", ""} for c in cells[1]) and all(len(c) == len(cells[0]) for c in cells)
    return [cells[0]] + cells[2:]


def test_write_report_every_file_and_table(data, tmp_path):
    results = {"histgan_bi": E.evaluate(_StandIn("histgan_bi"), data, pairs=2, progress=False, name="histgan_bi",
                                        realism=True),
               "cyclegan": E.evaluate(_StandIn("cyclegan", strength=0.1), data, pairs=2, progress=False,
                                      name="cyclegan", realism=True)}
    from histgan.eval.baselines import BASELINES

    results.update({n: E.evaluate(f, data, pairs=2, progress=False, name=n, realism=True)
                    for n, f in BASELINES.items()})
    sweeps = {"histgan_bi": [E.evaluate(_StandIn("histgan_bi", step=s, strength=s / 10), data, pairs=2,
                                        progress=False, n_samples=0) for s in (2, 4)]}
    written = write_report(results, tmp_path, checkpoints=sweeps)
    names = {"pairs.csv", "summary.json", "table2.md", "fig3.png", "colour_vs_shape.png",
             *[f"fig4_{n}.png" for n in results], *[f"histograms_{n}.png" for n in results]}
    assert names <= {p.name for p in tmp_path.iterdir()}
    assert all(p.is_file() and p.stat().st_size > 0 for p in written.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left

    table = _parse_markdown((tmp_path / "table2.md").read_text())
    head, body = table[0], table[1:]
    assert head[0] == "model" and head[-1] == "paper ΔE (Table 2)" and {"SSIM fg vs GT", "SSIM whole vs GT (secondary)"} <= set(head)
    assert head[1].startswith("ΔE (mean") and head.index("SSIM fg vs GT") < head.index("SSIM whole vs GT (secondary)")
    realism_cols = [head.index(c) for c in ("SWD×10³ whole", "SWD×10³ fg", "C2ST acc. whole", "C2ST acc. fg")]
    assert len(body) == 6 + 3  # every model and baseline, then the three calibration rows
    assert "CycleGAN" in body[0][0] and "both directions" in body[1][0]  # paper order, then baselines
    assert [r[0].split(":")[0] for r in body[6:]] == ["calibration"] * 3
    assert "floor" in body[6][0] and "true targets" in body[7][0] and "ceiling" in body[8][0]
    assert all(r[c] != "—" for r in body for c in realism_cols)  # every row has every realism column
    assert all(r[c] != "—" for r in body[:6] for c in range(1, len(head) - 1))  # models: every column
    assert [r[-1] for r in body] == ["14.1", "4.6", "—", "—", "—", "—", "—", "—", "—"]
    mean, std = (float(v) for v in body[1][1].split("±"))
    assert mean == pytest.approx(results["histgan_bi"].summary["delta_e_mean"], abs=0.005)
    assert body[1][2] == results["histgan_bi"].summary["grade_of_mean"]

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["models"]) == [r[0].split("`")[1] if "`" in r[0] else r[0] for r in body[:6]]
    assert set(summary["realism_calibration"]) == {"floor", "ceiling", "ground_truth"}
    assert all(set(REALISM_METRICS) <= set(m) for m in summary["models"].values())
    assert "SWD×10³ whole" in (tmp_path / "table2.md").read_text().split("\n\n", 1)[1]  # the legend
    assert summary["paper_table2_delta_e"]["histgan_bi"] == 4.6 and len(summary["jis_table"]) == 6
    lines = (tmp_path / "pairs.csv").read_text().splitlines()
    assert lines[0].startswith("model,input,reference,delta_e") and len(lines) == 1 + 6 * 4


def test_write_report_empty_is_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        write_report({}, tmp_path)


def _fake_run(root: Path, variant: str, steps=(2, 4)) -> Path:
    """A run directory with untrained weights in the format of histgan.train.loop (no training needed)."""
    from histgan.train.checkpoint import checkpoint_path, save_checkpoint
    from histgan.config import make_config
    from histgan.networks.generator import build_models

    run = root / variant
    config = make_config("quick", variant=variant, run_dir=str(run))
    torch.manual_seed(0)
    models = build_models(config)
    for step in steps:
        state = {"format": 1, "step": step, "config": config.to_dict(),
                 "models": {k: models[k].state_dict() for k in ("G", "F")}}
        save_checkpoint(checkpoint_path(run, step), state)
    save_checkpoint(run / "checkpoints" / "latest.pt", state)
    return run


def test_cli_runs_and_baselines(data_root, tmp_path, capsys):
    runs = [_fake_run(tmp_path, "histgan_bi"), _fake_run(tmp_path, "cyclegan")]
    out = tmp_path / "report"
    code = main(["evaluate", "--runs", *map(str, runs), "--data", str(data_root), "--out", str(out),
                 "--pairs", "2", "--checkpoint-pairs", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    body = _parse_markdown((out / "table2.md").read_text())[1:]
    assert len(body) == 2 + 4 and body[0][-1] == "14.1" and body[1][-1] == "4.6"
    summary = json.loads((out / "summary.json").read_text())
    assert [r["step"] for r in summary["checkpoints"]["histgan_bi"]] == [2, 4]
    assert (out / "colour_vs_shape.png").is_file() and (out / "fig3.png").is_file()


@pytest.mark.parametrize("args, match", [
    (["--data", "{missing}", "--out", "{out}"], "does not exist"),
    (["--data", "{data}", "--out", "{out}", "--pairs", "0"], "--pairs"),
    (["--data", "{data}", "--out", "{out}", "--runs", "{missing}"], "does not exist"),
    (["--data", "{data}", "--out", "{out}", "--no-baselines"], "nothing to evaluate"),
    (["--data", "{data}", "--out", "{out}", "--device", "nonsense"], "device"),
    (["--data", "{data}", "--out", "{out}", "--checkpoint-pairs", "-1"], "checkpoint-pairs"),
    (["--out", "{out}"], "--data"),
])
def test_cli_bad_input_one_line_exit_2(data_root, tmp_path, capsys, args, match):
    fill = {"missing": str(tmp_path / "missing"), "out": str(tmp_path / "o"), "data": str(data_root)}
    argv = ["evaluate", *[a.format(**fill) for a in args]]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_evaluate_realism_scores_deterministic_and_calibrated(data):
    res = E.evaluate(flat_fill, data, pairs=2, progress=False, realism=True)
    s = res.summary
    assert s["realism_n"] == 2 and s["realism_real"] == "2 test"  # 3 test + 2 train references: 2 per set
    assert all(np.isfinite(s[k]) for k in REALISM_METRICS) and 0 <= s["c2st_whole"] <= 1
    assert len(s["swd_whole_levels"]) == 2  # 32² → levels of 32² and 16²
    assert set(res.calibration) == {"floor", "ceiling", "ground_truth"}
    assert res.calibration["floor"]["source"] == "1 test + 1 trainB"
    fresh = EvalData(data.x, data.x_mask, data.x_names, data.ref, data.ref_mask, data.ref_names, data.root)
    again = E.evaluate(flat_fill, fresh, pairs=2, progress=False, realism=True)
    assert {k: again.summary[k] for k in REALISM_METRICS} == {k: s[k] for k in REALISM_METRICS}
    assert again.calibration == res.calibration


def test_evaluate_realism_auto_skips_small_sets_and_true_refuses_impossible(data):
    auto = E.evaluate(identity, data, pairs=2, progress=False)
    assert not set(REALISM_METRICS) & set(auto.summary) and auto.calibration is None
    with pytest.raises(HistganError, match="realism=True"):
        E.evaluate(identity, data, pairs=1, progress=False, realism=True)


def test_evaluate_accepts_device_auto(data):
    res = E.evaluate(identity, data, pairs=1, progress=False, device="auto", realism=False)
    assert len(res.pairs) == 1


def test_markdown_table_groups_split_the_columns_and_keep_the_rows(data):
    results = {"histgan_bi": E.evaluate(_StandIn("histgan_bi"), data, pairs=2, progress=False, name="histgan_bi",
                                        realism=True),
               "baseline_reinhard": E.evaluate(reinhard, data, pairs=2, progress=False, name="baseline_reinhard",
                                               realism=True)}
    tables = {g: markdown_table(results, [g]) for g in ("colour", "shape", "realism")}
    heads = {g: t.splitlines()[0] for g, t in tables.items()}
    assert "ΔE (mean ± std)" in heads["colour"] and "paper ΔE" in heads["colour"] and "SSIM" not in heads["colour"]
    assert "SSIM fg vs GT" in heads["shape"] and "ΔE (mean" not in heads["shape"] and "SWD" not in heads["shape"]
    assert "SWD×10³ fg" in heads["realism"] and "C2ST" in heads["realism"] and "SSIM" not in heads["realism"]
    for g, t in tables.items():  # every row has as many cells as its head; models in every group
        rows = [line for line in t.splitlines() if line.startswith("| ")]
        assert {line.count("|") for line in rows} == {heads[g].count("|")}, g
        assert sum("`histgan_bi`" in line for line in rows) == 1 and sum("`baseline_reinhard`" in line for line in rows) == 1
    assert sum("calibration:" in line for line in tables["realism"].splitlines()) == 3
    assert "calibration:" not in tables["colour"] and "calibration:" not in tables["shape"]
    whole = markdown_table(results)
    assert all(h.strip("| ").split(" | ")[1] in whole for h in heads.values())
    with pytest.raises(ValueError, match="groups"):
        markdown_table(results, ["colour", "speed"])


def test_fig3_with_truth_adds_a_ground_truth_column(data):
    from histgan.eval.figures import fig3

    results = {"histgan_bi": E.evaluate(_StandIn("histgan_bi"), data, pairs=2, progress=False, name="histgan_bi",
                                        realism=False)}
    plain, with_truth = fig3(results, rows=2), fig3(results, rows=2, truth=data)
    assert len(with_truth.axes) == len(plain.axes) + 2  # one more column, two rows
    titles = [ax.get_title() for ax in with_truth.axes]
    assert titles[:4] == ["input", "reference", "ground truth", "both directions"]
    truth = with_truth.axes[2].get_images()[0].get_array()
    expected = data.ground_truth([0], [0])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(np.asarray(truth), expected, atol=1e-6)


def test_shifted_references_turn_hue_and_scale_chroma_inside_the_mask_only():
    from histgan import colour_difference as CD
    from histgan.eval.results import EvalData

    g = torch.Generator().manual_seed(0)
    ref = torch.empty(2, 3, 8, 8)
    ref[:, 0], ref[:, 1], ref[:, 2] = 0.3, -0.1, -0.35  # a skin-like brown in [-1, 1]
    ref += 0.02 * torch.randn(ref.shape, generator=g)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    data = EvalData(ref.clone(), mask, ["x0", "x1"], ref.clone(), mask.clone(), ["r0", "r1"])
    out = E.shift_reference_colours(data, hue_degrees=-10.0, chroma_scale=1.2)
    inside = mask.bool().expand_as(ref)
    assert torch.equal(out.ref[~inside], ref[~inside]) and out.root is None
    lab0, lab1 = CD.rgb_to_lab(ref.double()), CD.rgb_to_lab(out.ref.double())
    m = mask.bool()[:, 0]
    hue0 = torch.atan2(lab0[:, 2], lab0[:, 1])[m]
    hue1 = torch.atan2(lab1[:, 2], lab1[:, 1])[m]
    chroma0, chroma1 = lab0[:, 1:].norm(dim=1)[m], lab1[:, 1:].norm(dim=1)[m]
    assert torch.allclose(torch.rad2deg(hue1 - hue0), torch.full_like(hue0, -10.0), atol=0.2)
    assert torch.allclose(chroma1 / chroma0, torch.full_like(chroma0, 1.2), rtol=0.02)
    assert torch.allclose(lab1[:, 0][m], lab0[:, 0][m], atol=0.05)  # lightness kept (in gamut here)
    same = E.shift_reference_colours(data, 0.0, 1.0)
    assert torch.allclose(same.ref, ref, atol=1e-5)
    with pytest.raises(ValueError, match="chroma_scale"):
        E.shift_reference_colours(data, 5.0, 0.0)


def test_edge_rim_table_rows_follow_the_results():
    """One row per stored name, baselines under their labels, numbers at two decimals, NaN as a dash."""
    from histgan.eval.baselines import BASELINE_LABELS
    from histgan.eval.report import edge_rim_table

    rows = {"mine": {"edge_excess_mean": 2.345, "edge_excess_median": 2.0, "pairs": 256},
            "baseline_reinhard": {"edge_excess_mean": float("nan"), "edge_excess_median": 1.5, "pairs": 0}}
    lines = edge_rim_table({"rows": rows}).splitlines()
    assert len(lines) == 4 and lines[2] == "| `mine` | 2.35 | 2.00 | 256 |"
    assert lines[3] == f"| {BASELINE_LABELS['baseline_reinhard']} | — | 1.50 | 0 |"
