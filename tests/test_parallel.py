"""Parallel jobs: --jobs N equals --jobs 1 bit for bit (same threads), a killed job resumes, shards, defaults."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import histgan.book.notebooks
from histgan.train import parallel
from histgan.book import sweep
from histgan.train.checkpoint import load_checkpoint
from histgan.errors import HistganError
from histgan.data.synthetic import write_dataset
from histgan.train.variants import train_run

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12  # quick preset: checkpoints at 4, 8, 12
POINTS = {"a": {"variant": "histgan_bi", "lambda_hist": 0.0}, "b": {"variant": "histgan_bi", "lambda_hist": 2.0}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "synth", size=32, n_train=6, n_test=2, progress=False)


def _jobs(out: Path, data: Path) -> list[parallel.Job]:
    return [parallel.Job(name, out / name, train_run, {"run_dir": str(out / name), "preset": "quick", "data": str(data),
                                                       "steps": STEPS, **params})
            for name, params in POINTS.items()]


def _assert_same_state(a: Path, b: Path) -> None:
    x, y = (load_checkpoint(r / "checkpoints" / "latest.pt") for r in (a, b))
    assert x["step"] == y["step"] == STEPS
    for name in x["models"]:
        for key, tensor in x["models"][name].items():
            assert torch.equal(tensor, y["models"][name][key]), f"{name}.{key} differs"
    for name in x["optimisers"]:
        for pid, st in x["optimisers"][name]["state"].items():
            for key, tensor in st.items():
                assert torch.equal(tensor, y["optimisers"][name]["state"][pid][key]), f"optimiser {name} {key}"


@pytest.fixture(scope="module")
def sequential(data, tmp_path_factory):
    """The reference: both points one after another in this process, one thread each."""
    out = tmp_path_factory.mktemp("jobs1")
    parallel.run_parallel(_jobs(out, data), workers=1, threads=1, gpus=[], progress=False)
    return out


@pytest.mark.slow
def test_two_workers_equal_one_worker_bit_for_bit(sequential, data, tmp_path, capsys):
    runs = parallel.run_parallel(_jobs(tmp_path, data), workers=2, threads=1, gpus=[], progress=True)
    assert [r.name for r in runs] == list(POINTS)
    for name in POINTS:
        _assert_same_state(sequential / name, tmp_path / name)
        marker = json.loads((tmp_path / name / parallel.MARKER).read_text())
        assert marker["target"] == "histgan.train.variants:train_run" and marker["parameters"]["lambda_hist"] == POINTS[name]["lambda_hist"]
    lines = capsys.readouterr().out.splitlines()
    assert sum("running in process" in s for s in lines) == 2 and sum(": done in" in s for s in lines) == 2
    before = {n: (tmp_path / n / "checkpoints" / "latest.pt").stat().st_mtime_ns for n in POINTS}
    parallel.run_parallel(_jobs(tmp_path, data), workers=2, threads=1, gpus=[], progress=True)
    assert capsys.readouterr().out.count("finished before, skipped") == 2
    assert before == {n: (tmp_path / n / "checkpoints" / "latest.pt").stat().st_mtime_ns for n in POINTS}


_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_parallel import _jobs
from histgan.train import parallel
parallel.run_parallel(_jobs(Path({out!r}), Path({data!r})), workers=2, threads=1, gpus=[], progress=False)
"""


@pytest.mark.slow
def test_a_job_killed_during_a_parallel_run_resumes(sequential, data, tmp_path):
    script = _DRIVER.format(tests=str(ROOT / "tests"), out=str(tmp_path), data=str(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    target = tmp_path / "a" / "checkpoints" / "step_000008.pt"
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and both workers
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert not (tmp_path / "a" / parallel.MARKER).exists()
    killed_at = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")["step"]
    assert 4 <= killed_at < STEPS
    parallel.run_parallel(_jobs(tmp_path, data), workers=2, threads=1, gpus=[], progress=False)
    for name in POINTS:
        assert (tmp_path / name / parallel.MARKER).is_file()
        _assert_same_state(sequential / name, tmp_path / name)
    steps = [json.loads(s)["step"] for s in (tmp_path / "a" / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1)), "resumed from its checkpoint: every step logged once"


def test_a_failing_job_is_named_and_the_others_finish(tmp_path):
    jobs = [parallel.Job("bad", tmp_path / "bad", "json:loads", {"s": "{"}),
            parallel.Job("good", tmp_path / "good", "json:dumps", {"obj": 1})]
    with pytest.raises(HistganError, match=r"1 job\(s\) failed: bad .exit 1; log .*job.log"):
        parallel.run_parallel(jobs, workers=2, threads=1, gpus=[], progress=False)
    assert (tmp_path / "good" / parallel.MARKER).is_file() and not (tmp_path / "bad" / parallel.MARKER).exists()
    assert "JSONDecodeError" in (tmp_path / "bad" / "job.log").read_text()
    with pytest.raises(HistganError, match="unique"):
        parallel.run_parallel(jobs + jobs[:1], workers=1, progress=False)
    with pytest.raises(HistganError, match="workers"):
        parallel.run_parallel(jobs, workers=0, progress=False)


def test_children_get_their_share_of_threads_and_a_gpu_round_robin(tmp_path, monkeypatch):
    started = []

    class Done:
        returncode, pid = 0, 1

        def poll(self):
            return 0

    monkeypatch.setattr(parallel, "_start", lambda job, env: started.append((job.name, env)) or Done())
    jobs = [parallel.Job(f"j{i}", tmp_path / f"j{i}", "json:dumps", {"obj": i}) for i in range(3)]
    parallel.run_parallel(jobs, workers=2, cpus=8, gpus=["0", "1"], progress=False, poll=0, stagger=0)
    assert [n for n, _ in started] == ["j0", "j1", "j2"]
    assert all(env["OMP_NUM_THREADS"] == "4" == env["MKL_NUM_THREADS"] for _, env in started)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["0", "1", "0"]


def test_default_workers_rule():
    assert parallel.default_workers(4, cpus=2, gpus=0) == 2 // parallel.CPU_THREADS_PER_JOB
    assert parallel.default_workers(4, cpus=16, gpus=2) == 2, "one job per GPU"
    assert parallel.default_workers(1, cpus=16, gpus=0) == 1, "never more than the points"
    assert parallel.default_workers(3, cpus=1, gpus=0) == 1


@pytest.mark.parametrize("text, expected", [("0/2", (0, 2)), ("1/2", (1, 2)), ("0/1", (0, 1))])
def test_parse_shard(text, expected):
    assert parallel.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["2/2", "1", "-1/2", "a/b", "0/0", "1/"])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError, match="--shard"):
        parallel.parse_shard(text)


def test_shards_together_equal_the_full_sweep(tmp_path, monkeypatch):
    """Shards 0/2 and 1/2 into one folder, then collect: the same table as one unsharded sweep."""
    def fake_execute(source, dest, parameters, cwd, progress=True):
        run = Path(parameters["run_dir"])
        (run / "config.json").write_text(json.dumps({"lambda_hist": parameters["lambda_hist"]}))

    monkeypatch.setattr(histgan.book.notebooks, "execute_notebook", fake_execute)
    monkeypatch.setattr(sweep, "_evaluate_run", lambda run, data, pairs, device: {
        "run_id": run.name, **json.loads((run / "config.json").read_text())})
    grid = {"lambda_hist": [0, 1, 2, 5, 10]}
    parts = [sweep.run_sweep("s", grid, out=tmp_path / "sharded", shard=(i, 2), progress=False) for i in (0, 1)]
    assert [len(p) for p in parts] == [3, 2] and not set(parts[0]) & set(parts[1])
    sweep.run_sweep("s", grid, out=tmp_path / "whole", progress=False)
    assert sweep.collect("s", out=tmp_path / "sharded") == sweep.collect("s", out=tmp_path / "whole")
    assert len(sweep.collect("s", out=tmp_path / "whole")) == 5


@pytest.mark.slow
def test_notebook_points_run_side_by_side(data, tmp_path):
    """Two papermill kernels started together (their ports could collide; starts are staggered and
    a collision is retried): both points finish with their notebook and marker."""
    runs = sweep.run_sweep("nb", {"lambda_hist": [0, 2]}, out=tmp_path, data=data, steps=2, jobs=2, progress=False)
    for run in runs:
        assert (run / "03_training.ipynb").is_file() and (run / parallel.MARKER).is_file()
        assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2
