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


_PROBE = """
import json, sys


def report(run_dir, use):
    \"\"\"What a job's process holds: torch and the IRI parser imported?, torch's threads, nbformat working.\"\"\"
    state = {"torch_before": "torch" in sys.modules}
    if use == "torch":
        import torch

        state["threads"] = torch.get_num_threads()
    else:
        import nbformat
        import papermill  # noqa: F401  (what a notebook job imports)

        nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
        state["iri_parser_blocked"] = sys.modules.get("rfc3987_syntax", "imported") is None
    with open(f"{run_dir}/state.json", "w") as f:
        json.dump(state, f)
"""


def test_a_job_process_imports_neither_torch_nor_the_iri_parser_and_torch_takes_its_threads(tmp_path, monkeypatch):
    """The child process of a parallel job: torch only when the job imports it, then with the job's share of
    threads (from OMP_NUM_THREADS; 1 here, where torch's default is every core); nbformat validates
    without jsonschema's slow IRI parser."""
    (tmp_path / "probe_job.py").write_text(_PROBE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    jobs = [parallel.Job(use, tmp_path / use, "probe_job:report", {"run_dir": str(tmp_path / use), "use": use})
            for use in ("torch", "notebook")]
    parallel.run_parallel(jobs, workers=2, threads=1, gpus=[], progress=False, poll=0.05, stagger=0)
    torch_job, notebook_job = (json.loads((tmp_path / u / "state.json").read_text()) for u in ("torch", "notebook"))
    assert torch_job == {"torch_before": False, "threads": 1}
    assert notebook_job == {"torch_before": False, "iri_parser_blocked": True}


def test_no_gpu_device_file_means_no_gpus_without_asking_torch(tmp_path, monkeypatch):
    def refuse():
        raise AssertionError("torch was asked")

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(torch.cuda, "is_available", refuse)
    monkeypatch.setattr(parallel, "_GPU_DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    assert parallel._visible_gpus() == []
    (tmp_path / "nvidiactl").touch()  # a driver's device file: torch decides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parallel._visible_gpus() == ["0", "1"]


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


class _Child:
    """A stand-in child process: running for ``polls`` polls, then exiting with ``code``."""

    def __init__(self, polls: int, code: int = 0) -> None:
        self.polls, self.returncode, self.pid = polls, None, 1
        self.code = code

    def poll(self):
        self.polls -= 1
        if self.polls <= 0:
            self.returncode = self.code
        return self.returncode


def _fake_pool(monkeypatch, exits: dict[str, int] | None = None, polls: int = 3):
    """Replace the child processes: record (name, env, names running beside it) at each start."""
    started, running = [], {}

    def start(job, env):
        beside = sorted(n for n, c in running.items() if c.returncode is None)
        child = running[job.name] = _Child(polls, (exits or {}).get(job.name, 0))
        started.append((job.name, env, beside))
        return child

    monkeypatch.setattr(parallel, "_start", start)
    return started


def test_a_job_starts_after_the_jobs_it_names_and_the_first_ready_goes_first(tmp_path, monkeypatch):
    started = _fake_pool(monkeypatch)
    jobs = [parallel.Job("late", tmp_path / "late", "json:dumps", {"obj": 0}, after=("b",)),
            parallel.Job("a", tmp_path / "a", "json:dumps", {"obj": 1}),
            parallel.Job("b", tmp_path / "b", "json:dumps", {"obj": 2})]
    done = []
    parallel.run_parallel(jobs, workers=2, cpus=2, gpus=[], progress=False, poll=0, stagger=0,
                          on_done=lambda job, s: done.append(job.name))
    assert [n for n, *_ in started] == ["a", "b", "late"]
    assert "b" not in started[2][2], "late started only after b had ended"
    assert done.index("b") < done.index("late") and sorted(done) == ["a", "b", "late"]
    assert all((tmp_path / n / parallel.MARKER).is_file() for n in ("a", "b", "late"))


def test_a_wide_job_takes_every_slot_and_later_jobs_do_not_overtake_it(tmp_path, monkeypatch):
    started = _fake_pool(monkeypatch)
    jobs = [parallel.Job("first", tmp_path / "first", "json:dumps", {"obj": 0}),
            parallel.Job("wide", tmp_path / "wide", "json:dumps", {"obj": 1}, width=parallel.ALL_SLOTS),
            parallel.Job("small", tmp_path / "small", "json:dumps", {"obj": 2})]
    parallel.run_parallel(jobs, workers=2, cpus=4, gpus=["0", "1"], progress=False, poll=0, stagger=0)
    by_name = {n: (env, beside) for n, env, beside in started}
    assert [n for n, *_ in started] == ["first", "wide", "small"], "small waits behind wide, though a slot was free"
    assert by_name["wide"][1] == [] and by_name["small"][1] == [], "nothing runs beside the wide job"
    assert by_name["wide"][0]["OMP_NUM_THREADS"] == "4" and by_name["wide"][0]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert by_name["small"][0]["OMP_NUM_THREADS"] == "2"


def test_jobs_after_a_failed_one_are_not_run_and_are_named(tmp_path, monkeypatch):
    started = _fake_pool(monkeypatch, exits={"bad": 1})
    jobs = [parallel.Job("bad", tmp_path / "bad", "json:dumps", {"obj": 0}),
            parallel.Job("needs_bad", tmp_path / "needs_bad", "json:dumps", {"obj": 1}, after=("bad",)),
            parallel.Job("other", tmp_path / "other", "json:dumps", {"obj": 2})]
    with pytest.raises(HistganError, match=r"2 job\(s\) failed: bad \(exit 1.*needs_bad \(not run: it comes after bad"):
        parallel.run_parallel(jobs, workers=2, cpus=2, gpus=[], progress=False, poll=0, stagger=0)
    assert [n for n, *_ in started] == ["bad", "other"]
    assert (tmp_path / "other" / parallel.MARKER).is_file() and not (tmp_path / "needs_bad" / parallel.MARKER).exists()


def test_one_worker_honours_the_order_in_this_process(tmp_path):
    jobs = [parallel.Job("second", tmp_path / "second", "json:dumps", {"obj": 0}, after=("first",)),
            parallel.Job("first", tmp_path / "first", "json:dumps", {"obj": 1})]
    order = []
    parallel.run_parallel(jobs, workers=1, threads=1, gpus=[], progress=False, on_start=lambda j: order.append(j.name))
    assert order == ["first", "second"]


@pytest.mark.parametrize("after, message", [({"a": ("a",)}, "after itself"), ({"a": ("b",), "b": ("a",)}, "cycle")])
def test_an_order_that_cannot_be_kept_is_refused(tmp_path, after, message):
    jobs = [parallel.Job(n, tmp_path / n, "json:dumps", {"obj": 0}, after=after.get(n, ())) for n in ("a", "b")]
    with pytest.raises(HistganError, match=message):
        parallel.run_parallel(jobs, workers=2, cpus=2, gpus=[], progress=False)
    with pytest.raises(HistganError, match="width of job a"):
        parallel.run_parallel([parallel.Job("a", tmp_path / "a", "json:dumps", {"obj": 0}, width=0)], workers=2)


def test_starts_are_staggered_without_holding_up_the_others(tmp_path, monkeypatch):
    """With a stagger, two starts are at least that far apart, and the pool keeps polling meanwhile."""
    clock = {"t": 0.0}
    monkeypatch.setattr(parallel.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(parallel.time, "sleep", lambda s: clock.__setitem__("t", clock["t"] + max(s, 0.5)))
    starts = []
    monkeypatch.setattr(parallel, "_start", lambda job, env: starts.append(clock["t"]) or _Child(1))
    jobs = [parallel.Job(f"j{i}", tmp_path / f"j{i}", "json:dumps", {"obj": i}) for i in range(3)]
    parallel.run_parallel(jobs, workers=2, cpus=2, gpus=[], progress=False, poll=0.5, stagger=2.0)
    assert len(starts) == 3 and all(b - a >= 2.0 for a, b in zip(starts, starts[1:])), starts
    assert starts[-1] - starts[0] < 2.0 * 2 + 1.0, "no start waited longer than the stagger needs"
