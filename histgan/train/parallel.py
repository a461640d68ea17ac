"""Run named jobs side by side, each in its own process with its share of the CPU threads or its own GPU.

A job is a function named ``"module:function"`` called with keyword arguments, writing into its own run
folder (a sweep's notebook is executed by such a function, :func:`histgan.book.notebooks.run_notebook_job`).
:func:`run_parallel` keeps up to ``workers`` of them running:

* **Threads**: each job gets ``OMP_NUM_THREADS = MKL_NUM_THREADS = threads`` and
  ``torch.set_num_threads(threads)`` (a notebook's kernel inherits the variables); by default
  ``threads = cpus // workers`` (at least 1). torch's CPU kernels round differently with another
  thread count, so a job is bit-identical across runs only at the same ``threads``.
* **GPUs**: when ``gpus`` is given (default: every GPU torch sees), the job in slot ``s`` sees only
  GPU ``gpus[s % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``): one job per GPU with ``workers = len(gpus)``,
  jobs sharing a GPU round-robin with more.
* **Resumable**: a job whose folder holds the completion marker ``sweep_done.json`` (written
  atomically after the job succeeded) is skipped; any other job runs, and a training job resumes
  from its newest checkpoint (``resume="auto"``), so a killed job continues when it is run again.

``workers == 1`` runs the jobs one after another in this process (a notebook still gets its own
kernel process); more run each job in a child ``python -m histgan.train.parallel`` whose output goes to
``<run_dir>/job.log``. :func:`default_workers` is the documented default.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from histgan.errors import HistganError
from histgan.io import atomic_write_json

__all__ = ["MARKER", "Job", "default_workers", "parse_shard", "shard", "run_parallel"]

#: Completion marker of a job's run folder, written atomically after the job succeeded.
MARKER = "sweep_done.json"
#: Threads per job below which CPU jobs are not split further (measured, BENCHMARKS.md §8).
CPU_THREADS_PER_JOB = 1


@dataclass(frozen=True)
class Job:
    """One named unit of work: a function, its keyword arguments, and its run folder.

    Attributes:
        name: shown in progress lines (e.g. the run id).
        run_dir: the job's folder; gets the marker.
        target: ``"package.module:function"``; a module-level function is accepted and turned into
            that string.
        params: JSON values: the function's keyword arguments.
        marker: fields of the completion marker (default ``{"parameters": params}``).
    """

    name: str
    run_dir: Path
    target: str | Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    marker: Mapping[str, Any] | None = None

    @property
    def target_name(self) -> str:
        """``target`` as a string, ``module:function``."""
        if callable(self.target):
            return f"{self.target.__module__}:{self.target.__qualname__}"
        return str(self.target)

    @property
    def done(self) -> bool:
        """Whether the job finished before (its marker exists)."""
        return (Path(self.run_dir) / MARKER).is_file()


def default_workers(points: int, cpus: int | None = None, gpus: int | None = None) -> int:
    """Jobs run at once by default: one per GPU when there are GPUs, else one per
    ``CPU_THREADS_PER_JOB`` cores; never more than ``points``, at least 1.

    On the 2-core machine of BENCHMARKS.md §8, two one-thread jobs finished two points sooner than
    one two-thread job after the other.
    """
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    gpus = len(_visible_gpus()) if gpus is None else gpus
    per = gpus if gpus > 0 else max(1, cpus // CPU_THREADS_PER_JOB)
    return max(1, min(points, per))


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``0 <= I < N``.

    Raises:
        ValueError: anything else, naming ``--shard``.
    """
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"--shard takes I/N (0-based shard I of N, e.g. 0/2), got {text!r}")
    i, n = int(index), int(count)
    if n < 1 or i >= n:
        raise ValueError(f"--shard I/N needs N >= 1 and 0 <= I < N, got {text!r}")
    return i, n


def shard(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """Every ``count``-th item from ``index`` on (0-based): shard ``index`` of ``count``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}) with count >= 1, got {index}/{count}")
    return list(items)[index::count]


def _visible_gpus() -> list[str]:
    """GPU ids this process may use (honouring ``CUDA_VISIBLE_DEVICES``)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in listed.split(",") if s.strip()] if listed else []
    return ids[: torch.cuda.device_count()] if ids else [str(i) for i in range(torch.cuda.device_count())]


def _job_env(threads: int, gpu: str | None) -> dict[str, str]:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def execute_job(target: str, params: Mapping[str, Any], run_dir: str | os.PathLike) -> None:
    """Run one job here and now: call the function ``target`` (``"package.module:function"``) with ``params``."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    module, sep, name = target.partition(":")
    if not sep or not name:
        raise HistganError(f"job target {target!r} is not 'package.module:function'")
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    fn(**params)


@contextlib.contextmanager
def _environment(env: Mapping[str, str], threads: int) -> Iterator[None]:
    """Set variables (for a notebook kernel started inside) and torch's threads; restore after."""
    import torch

    saved, saved_threads = {k: os.environ.get(k) for k in env}, torch.get_num_threads()
    os.environ.update(env)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _finish(job: Job, seconds: float) -> None:
    record = {"name": job.name, "target": job.target_name, "seconds": round(seconds, 1),
              **({"parameters": dict(job.params)} if job.marker is None else dict(job.marker))}
    atomic_write_json(Path(job.run_dir) / MARKER, json.loads(json.dumps(record)))


def _start(job: Job, env: Mapping[str, str]) -> subprocess.Popen:
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"target": job.target_name, "params": dict(job.params), "run_dir": str(run_dir)})
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    with open(run_dir / "job.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "histgan.train.parallel", spec], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **env, "PYTHONPATH": path})


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_parallel(jobs: Sequence[Job], workers: int | None = None, threads: int | None = None,
                 gpus: Sequence[str] | None = None, cpus: int | None = None, progress: bool = True,
                 poll: float = 0.2, stagger: float = 3.0) -> list[Path]:
    """Run ``jobs``, up to ``workers`` at once, each with ``threads`` threads or one GPU; skip finished ones.

    Args:
        jobs: the jobs, in order (started in this order; their names must be unique).
        workers: jobs at once; ``None``: :func:`default_workers`.
        threads: CPU threads per job; ``None``: ``max(1, cpus // workers)``.
        gpus: GPU ids handed round-robin to the slots; ``None``: every GPU visible here; ``[]``: none.
        cpus: cores to share out; ``None``: ``os.cpu_count()``.
        progress: print a line when a job starts, is skipped, ends or fails.
        poll: seconds between checks of the running children.
        stagger: seconds between two starts (notebook kernels started at the same moment can
            collide on their ports; a collision is also retried).

    Returns:
        The jobs' run folders, in the order given (skipped ones included).

    Raises:
        HistganError: a bad ``workers``/``threads``, duplicate names, or jobs that failed (named, with
            their logs; the others still ran to the end). An interrupt stops every running child.
    """
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise HistganError(f"job names must be unique, got {names}")
    gpus = _visible_gpus() if gpus is None else list(gpus)
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    workers = default_workers(sum(not j.done for j in jobs), cpus, len(gpus)) if workers is None else workers
    for flag, value in (("workers", workers), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise HistganError(f"{flag} must be an integer >= 1, got {value!r}")
    threads = max(1, cpus // workers) if threads is None else threads
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    total, failed = len(jobs), []
    todo = []
    for i, job in enumerate(jobs, 1):
        if job.done:
            say(f"[{i}/{total}] {job.name}: finished before, skipped")
        else:
            todo.append((i, job))
    if workers == 1:
        for i, job in todo:
            gpu = gpus[0] if gpus else None
            say(f"[{i}/{total}] {job.name}: running ({threads} thread(s){'' if gpu is None else f', GPU {gpu}'})")
            t0 = time.perf_counter()
            with _environment(_job_env(threads, gpu), threads):
                execute_job(job.target_name, job.params, job.run_dir)
            _finish(job, time.perf_counter() - t0)
            say(f"[{i}/{total}] {job.name}: done in {time.perf_counter() - t0:.0f} s")
        return [Path(j.run_dir) for j in jobs]
    running: dict[int, tuple[subprocess.Popen, int, Job, float]] = {}
    try:
        while todo or running:
            for slot in [s for s in range(workers) if s not in running][: len(todo)]:
                i, job = todo.pop(0)
                gpu = gpus[slot % len(gpus)] if gpus else None
                proc = _start(job, _job_env(threads, gpu))
                running[slot] = proc, i, job, time.perf_counter()
                say(f"[{i}/{total}] {job.name}: running in process {proc.pid} ({threads} thread(s)"
                    f"{'' if gpu is None else f', GPU {gpu}'}; log {Path(job.run_dir) / 'job.log'})")
                if todo:
                    time.sleep(stagger)
            time.sleep(poll)
            for slot, (proc, i, job, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slot]
                if proc.returncode == 0:
                    _finish(job, time.perf_counter() - t0)
                    say(f"[{i}/{total}] {job.name}: done in {time.perf_counter() - t0:.0f} s")
                else:
                    failed.append(f"{job.name} (exit {proc.returncode}; log {Path(job.run_dir) / 'job.log'})")
                    say(f"[{i}/{total}] {job.name}: FAILED, exit code {proc.returncode}")
    finally:
        _stop([p for p, *_ in running.values()])
    if failed:
        raise HistganError(f"{len(failed)} job(s) failed: {'; '.join(failed)}; fix the cause and rerun "
                           "(finished jobs are skipped, interrupted ones resume)")
    return [Path(j.run_dir) for j in jobs]


def _main(argv: Sequence[str]) -> int:
    """Child process: run the one job given as JSON; SIGTERM ends it like Ctrl-C (kernels shut down)."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    spec = json.loads(argv[0])
    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if threads:
        import torch

        torch.set_num_threads(threads)
    execute_job(spec["target"], spec["params"], spec["run_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
