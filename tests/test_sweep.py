"""Batch experiments: grid expansion, run ids, a tiny real sweep (skip, redo, collect), the CLI."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import histgan.book.notebooks
from histgan.book import sweep
from histgan.cli import main
from histgan.errors import HistganError
from histgan.train.parallel import MARKER

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2  # training steps of every real run here (the quick preset's networks, 32² images)
GRID = {"lambda_hist": [0, 2]}


# ---- pure parts -------------------------------------------------------------------------------------


def test_expand_grid_is_the_product_in_key_order():
    points = sweep.expand_grid({"lambda_hist": [0, 2, 10], "bins": [16, 32]}, {"preset": "quick"})
    assert len(points) == 6
    assert points[0] == {"preset": "quick", "lambda_hist": 0, "bins": 16}
    assert points[1] == {"preset": "quick", "lambda_hist": 0, "bins": 32}
    assert points[-1] == {"preset": "quick", "lambda_hist": 10, "bins": 32}
    assert sweep.expand_grid({"variant": "cyclegan"}) == [{"variant": "cyclegan"}], "a bare value is one point"
    assert sweep.expand_grid({"steps": [3]}, {"steps": 9}) == [{"steps": 3}], "the grid overrides the base"


@pytest.mark.parametrize("grid, base, match", [
    ({"lambda_hist": []}, {}, "no values"),
    ({"colour": [1]}, {}, "not a parameter"),
    ({}, {"colour": 1}, "not a parameter"),
    ({"run_dir": ["a"]}, {}, "set by the sweep"),
    ({}, {"resume": True}, "set by the sweep"),
])
def test_expand_grid_rejects_bad_grids(grid, base, match):
    with pytest.raises(ValueError, match=match):
        sweep.expand_grid(grid, base, known=["lambda_hist", "variant"])


def test_run_id_names_variant_and_grid_keys():
    params = {"variant": "cyclegan", "lambda_hist": 2.5, "bins": 16, "data": "/x/y", "bandwidth": None}
    assert sweep.run_id(params, ["lambda_hist", "bins"]) == "variant=cyclegan,lambda_hist=2.5,bins=16"
    assert sweep.run_id(params, ["bandwidth"]) == "variant=cyclegan,bandwidth=None"
    assert sweep.run_id({"variant": "a/b c"}, []) == "variant=a_b_c", "no path separators in a folder name"


def test_notebook_parameters_reads_the_training_notebook():
    params = sweep.notebook_parameters(sweep.DEFAULT_NOTEBOOK)
    assert params["variant"] == "histgan_bi" and params["preset"] == "quick" and params["device"] == "auto"
    for name in ("steps", "lambda_gan", "lambda_cycle", "lambda_idt", "lambda_hist", "bins", "bandwidth", "data",
                 "run_dir", "seed", "resume"):
        assert name in params
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sweep.notebook_parameters("notebooks/nope.py")


def test_bad_sweeps_fail_before_executing(tmp_path, monkeypatch):
    monkeypatch.setattr(histgan.book.notebooks, "execute_notebook", lambda *a, **k: pytest.fail("must not execute"))
    with pytest.raises(ValueError, match="same folder name"):
        sweep.run_sweep("dup", {"lambda_hist": [2, 2.0]}, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="sweep name"):
        sweep.run_sweep("a/b", GRID, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="not a parameter"):
        sweep.run_sweep("x", {"lambda": [1]}, out=tmp_path, progress=False)


def test_unfinished_run_resumes_finished_run_is_skipped(tmp_path, monkeypatch):
    """Without executing anything: which points run; the notebook resumes when it finds a checkpoint."""
    calls = []

    def fake_execute(source, dest, parameters, cwd, progress=True):
        calls.append((Path(dest).parent.name, parameters["resume"]))

    monkeypatch.setattr(histgan.book.notebooks, "execute_notebook", fake_execute)
    grid = {"lambda_hist": [0, 2, 10]}
    ids = [sweep.run_id({"variant": "histgan_bi", "lambda_hist": v}, ["lambda_hist"]) for v in (0, 2, 10)]
    (tmp_path / "s" / ids[1] / "checkpoints").mkdir(parents=True)
    (tmp_path / "s" / ids[1] / "checkpoints" / "step_000001.pt").write_bytes(b"")  # interrupted after a checkpoint
    params = {"variant": "histgan_bi", "lambda_hist": 10, "steps": 5}
    (tmp_path / "s" / ids[2]).mkdir()
    (tmp_path / "s" / ids[2] / MARKER).write_text(json.dumps({"parameters": params,
                                                                    "data": str(tmp_path / "s" / "data")}))
    runs = sweep.run_sweep("s", grid, out=tmp_path, steps=5, progress=False, pairs=None)
    assert [r.name for r in runs] == ids
    assert calls == [(ids[0], "auto"), (ids[1], "auto")], "unfinished runs execute (resuming if they can)"
    marker = json.loads((tmp_path / "s" / ids[0] / MARKER).read_text())
    assert marker["parameters"] == {"variant": "histgan_bi", "steps": 5, "lambda_hist": 0}


# ---- a real sweep -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    runs = sweep.run_sweep("tiny", GRID, out=out, steps=STEPS, progress=False)
    return out, runs


def _mtimes(run: Path) -> dict[str, int]:
    files = [run / "checkpoints" / "latest.pt", run / "03_training.ipynb", run / MARKER]
    return {f.name: f.stat().st_mtime_ns for f in files}


@pytest.mark.slow
def test_sweep_runs_every_point_and_a_rerun_skips_them(tiny_sweep):
    out, runs = tiny_sweep
    assert [r.name for r in runs] == ["variant=histgan_bi,lambda_hist=0", "variant=histgan_bi,lambda_hist=2"]
    for run, lam in zip(runs, GRID["lambda_hist"]):
        config = json.loads((run / "config.json").read_text())
        assert config["lambda_hist"] == lam and config["steps"] == STEPS and config["variant"] == "histgan_bi"
        assert (run / "checkpoints" / "latest.pt").is_file() and (run / "03_training.ipynb").is_file()
        assert not (run / "03_training.running.ipynb").exists()
        assert json.loads((run / MARKER).read_text())["parameters"]["lambda_hist"] == lam
    before = [_mtimes(r) for r in runs]
    assert sweep.run_sweep("tiny", GRID, out=out, steps=STEPS, progress=False) == runs
    assert [_mtimes(r) for r in runs] == before, "finished runs are not retrained nor re-executed"
    with pytest.raises(HistganError, match="steps"):
        sweep.run_sweep("tiny", GRID, out=out, steps=STEPS + 1, progress=False)
    with pytest.raises(HistganError, match="data"):
        sweep.run_sweep("tiny", GRID, out=out, steps=STEPS, data=out / "other", progress=False)


@pytest.mark.slow
def test_each_job_evaluates_its_run_and_collect_reads_that_without_torch(tiny_sweep, tmp_path):
    """run_sweep's jobs evaluate their runs (pairs=4, collect's default); collect then reads those results (and
    plots them) in a process that never imports torch, and they equal what collect computes itself."""
    out, runs = tiny_sweep
    for run in runs:
        saved = json.loads((run / "eval.json").read_text())
        assert saved["key"] == {"step": STEPS, "data": str((out / "tiny" / "data").resolve()), "pairs": 4}
    probe = ("import json, sys; from histgan.book import sweep; "
             f"rows = sweep.collect('tiny', out={str(out)!r}); sweep.plot_sweep(rows); "
             "print(json.dumps({'torch': 'torch' in sys.modules, 'rows': rows}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    read = json.loads(done.stdout)
    assert read["torch"] is False and [r["run_id"] for r in read["rows"]] == [r.name for r in runs]
    for run in runs:
        shutil.copytree(run, tmp_path / "tiny" / run.name)
        (tmp_path / "tiny" / run.name / "eval.json").unlink()
    fresh = sweep.collect("tiny", out=tmp_path)  # evaluated here, by collect itself
    assert [r["run_id"] for r in fresh] == [r["run_id"] for r in read["rows"]]
    for mine, theirs in zip(fresh, read["rows"]):
        assert mine.keys() == theirs.keys()
        for key, value in mine.items():
            same = value == pytest.approx(theirs[key], rel=1e-6) if isinstance(value, float) else value == theirs[key]
            assert same, f"{key}: the job's evaluation is collect's"
    with pytest.raises(ValueError, match="pairs"):
        sweep.run_sweep("tiny", GRID, out=out, steps=STEPS, progress=False, pairs=0)


@pytest.mark.slow
def test_collect_has_each_run_exactly_once(tiny_sweep):
    out, runs = tiny_sweep
    rows = sweep.collect("tiny", out=out, pairs=2)
    assert [r["run_id"] for r in rows] == sorted(r.name for r in runs)
    assert [r["lambda_hist"] for r in rows] == [0, 2] and all(r["step"] == STEPS for r in rows)
    assert all(r["delta_e_mean"] >= 0 and r["n_pairs"] == 4 and r["bandwidth"] == 2 / r["bins"] for r in rows)
    table = (out / "tiny" / "sweep.csv").read_text().splitlines()
    assert len(table) == 1 + len(runs) and table[0].startswith("run_id,")
    assert json.loads((out / "tiny" / "sweep.json").read_text()) == rows
    cached = [(r / "eval.json").stat().st_mtime_ns for r in runs]
    assert sweep.collect("tiny", out=out, pairs=2) == rows
    assert [(r / "eval.json").stat().st_mtime_ns for r in runs] == cached, "evaluated once, then cached"
    fig = sweep.plot_sweep(rows)
    assert len(fig.axes) == 4 and fig.axes[0].get_xlabel() == "λ_hist"


@pytest.mark.slow
def test_an_interrupted_run_is_redone_and_resumes(tiny_sweep):
    out, runs = tiny_sweep
    broken, intact = runs
    keep, checkpoint = _mtimes(intact), broken / "checkpoints" / "latest.pt"
    trained = checkpoint.stat().st_mtime_ns
    (broken / MARKER).unlink()  # killed after its last checkpoint, before its marker
    (broken / "03_training.ipynb").unlink()
    (broken / "03_training.running.ipynb").write_text("{")  # the partial notebook it left behind
    with pytest.warns(RuntimeWarning, match="unfinished"):
        assert [r["run_id"] for r in sweep.collect("tiny", out=out, pairs=2)] == [intact.name]
    sweep.run_sweep("tiny", GRID, out=out, steps=STEPS, progress=False)
    assert (broken / MARKER).is_file() and (broken / "03_training.ipynb").is_file()
    assert not (broken / "03_training.running.ipynb").exists()
    assert checkpoint.stat().st_mtime_ns == trained, "resumed from its checkpoint, not retrained from scratch"
    assert "resume: True" in (broken / "03_training.ipynb").read_text()
    lines = (broken / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, STEPS + 1))
    assert _mtimes(intact) == keep


# ---- CLI --------------------------------------------------------------------------------------------


def test_cli_maps_flags_onto_run_sweep(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_run_sweep(name, grid, base_params, **kw):
        seen.update(name=name, grid=grid, base=base_params, **kw)
        return []

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    code = main(["sweep", "--name", "n", "--grid", "lambda_hist=0,2.5", "--grid", "bandwidth=None,0.05",
                 "--variant", "cyclegan", "histgan_bi", "--param", "preset=cpu", "--steps", "7",
                 "--out", str(tmp_path), "--no-collect", "--no-progress"])
    assert code == 0
    assert seen["grid"] == {"variant": ["cyclegan", "histgan_bi"], "lambda_hist": [0, 2.5], "bandwidth": [None, 0.05]}
    assert seen["base"] == {"preset": "cpu"} and seen["steps"] == 7 and seen["progress"] is False


@pytest.mark.parametrize("argv, message", [
    (["--grid", "lambda_hist"], "KEY=VALUE"),
    (["--grid", "colour=1,2"], "not a parameter"),
    (["--grid", "bins=16", "--param", "preset"], "KEY=VALUE"),
    ([], "at least one"),
])
def test_cli_bad_arguments_exit_2(argv, message, tmp_path, capsys):
    assert main(["sweep", "--name", "n", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--help"])
    assert exc.value.code == 0 and "--grid" in capsys.readouterr().out
