"""Run named jobs side by side, each in its own process with its share of the CPU threads or its own GPU.

A job is a function named ``"module:function"`` called with keyword arguments, writing into its own run
folder (a sweep's notebook is executed by such a function, :func:`histgan.book.notebooks.run_notebook_job`).
:func:`run_parallel` keeps up to ``workers`` of them running:

* **Threads**: each job gets ``OMP_NUM_THREADS = MKL_NUM_THREADS = threads``, which torch reads when it
  first runs in parallel and a notebook's kernel inherits (a job run in this process also gets
  ``torch.set_num_threads(threads)``); by default
  ``threads = cpus // workers`` (at least 1). torch's CPU kernels round differently with another
  thread count, so a job is bit-identical across runs only at the same ``threads``.
* **GPUs**: when ``gpus`` is given (default: every GPU torch sees), the job in slot ``s`` sees only
  GPU ``gpus[s % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``): one job per GPU with ``workers = len(gpus)``,
  jobs sharing a GPU round-robin with more.
* **Resumable**: a job whose folder holds the completion marker ``sweep_done.json`` (written
  atomically after the job succeeded) is skipped; any other job runs, and a training job resumes
  from its newest checkpoint (``resume="auto"``), so a killed job continues when it is run again.

* **Ordered**: a job may name jobs it comes ``after`` (it starts once they have finished; when one
  fails, it is not run and counts as failed), and may take several slots at once (``width``: a job that
  runs jobs of its own, with their threads or GPUs). Among the jobs that may start, the first in the
  given order goes first, and it waits for enough free slots: later jobs do not overtake it.

``workers == 1`` runs the jobs one after another in this process (a notebook still gets its own
kernel process); more run each job in a child ``python -m histgan.train.parallel`` whose output goes to
``<run_dir>/job.log``. :func:`default_workers` is the documented default. The main job
(:mod:`histgan.book.pipeline`) runs its trainings and its notebooks this way, one pool for all of them.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
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

__all__ = ["MARKER", "ALL_SLOTS", "Job", "default_workers", "parse_shard", "shard", "run_parallel"]

#: Completion marker of a job's run folder, written atomically after the job succeeded.
MARKER = "sweep_done.json"
#: Threads per job below which CPU jobs are not split further (measured, BENCHMARKS.md §8).
CPU_THREADS_PER_JOB = 1
#: A job's ``width`` that takes every slot (a job that runs jobs of its own side by side).
ALL_SLOTS = 1 << 16


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
        after: names of jobs of the same run that must finish first (names not among the jobs count
            as finished before).
        width: slots the job takes (``threads × width`` threads, or the GPUs of its slots); capped at
            ``workers``.
    """

    name: str
    run_dir: Path
    target: str | Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    marker: Mapping[str, Any] | None = None
    after: tuple[str, ...] = ()
    width: int = 1

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


#: Device files of a GPU driver torch can use on Linux: NVIDIA's, ROCm's, WSL's.
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _visible_gpus() -> list[str]:
    """GPU ids this process may use (honouring ``CUDA_VISIBLE_DEVICES``).

    On Linux without any GPU driver's device file, none, without importing torch (1.5–1.7 s that a
    parallel run's parent, which starts processes, does not otherwise spend); else torch is asked.
    """
    if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _GPU_DEVICE_FILES):
        return []
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
                 poll: float = 0.2, stagger: float = 1.0, on_start: Callable[[Job], None] | None = None,
                 on_done: Callable[[Job, float], None] | None = None) -> list[Path]:
    """Run ``jobs``, up to ``workers`` at once, each with ``threads`` threads or one GPU; skip finished ones.

    Args:
        jobs: the jobs, in order (started in this order as their ``after`` jobs finish; their names
            must be unique).
        workers: slots, i.e. jobs of width 1 at once; ``None``: :func:`default_workers`.
        threads: CPU threads per slot; ``None``: ``max(1, cpus // workers)``.
        gpus: GPU ids handed round-robin to the slots; ``None``: every GPU visible here; ``[]``: none.
        cpus: cores to share out; ``None``: ``os.cpu_count()``.
        progress: print a line when a job starts, is skipped, ends or fails.
        poll: seconds between checks of the running children.
        stagger: least seconds between two starts (two notebook kernels started at the same moment
            could collide; a collision is also retried). Other jobs' ends are still noticed meanwhile.
        on_start, on_done: called in this process when a job starts, and when it has finished (after
            its marker is written) with its seconds; not for skipped or failed jobs.

    Returns:
        The jobs' run folders, in the order given (skipped ones included).

    Raises:
        HistganError: a bad ``workers``/``threads``/``width``, duplicate names, a job that comes after
            itself or jobs that wait for each other in a cycle, or jobs that failed (named, with their logs; the
            others still ran to the end, except those that come after a failed one). An interrupt
            stops every running child.
    """
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise HistganError(f"job names must be unique, got {names}")
    gpus = _visible_gpus() if gpus is None else list(gpus)
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    workers = default_workers(sum(not j.done for j in jobs), cpus, len(gpus)) if workers is None else workers
    for flag, value in (("workers", workers), ("threads", threads), *((f"width of job {j.name}", j.width) for j in jobs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise HistganError(f"{flag} must be an integer >= 1, got {value!r}")
    _check_order(jobs)
    threads = max(1, cpus // workers) if threads is None else threads
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    total, failed, finished = len(jobs), [], {j.name for j in jobs if j.done}
    todo = []
    for i, job in enumerate(jobs, 1):
        if job.done:
            say(f"[{i}/{total}] {job.name}: finished before, skipped")
        else:
            todo.append((i, job))
    pending, broken = {j.name for _, j in todo}, set()  # to run; failed or not run

    def fail(i: int, job: Job, why: str, line: str) -> None:
        failed.append(f"{job.name} ({why})")
        broken.add(job.name)
        say(f"[{i}/{total}] {job.name}: {line}")

    def next_ready() -> tuple[int, Job] | None:
        """Drop the jobs that come after a failed one; return the first whose ``after`` jobs are done."""
        for entry in [e for e in todo if broken & set(e[1].after)]:
            todo.remove(entry)
            why = f"not run: it comes after {min(broken & set(entry[1].after))}, which failed"
            fail(*entry, why, why)
        return next((e for e in todo if all(a in finished or a not in pending for a in e[1].after)), None)

    def finish(i: int, job: Job, t0: float) -> None:
        seconds = time.perf_counter() - t0
        _finish(job, seconds)
        finished.add(job.name)
        say(f"[{i}/{total}] {job.name}: done in {seconds:.0f} s")
        if on_done is not None:
            on_done(job, seconds)

    if workers == 1:
        while (ready := next_ready()) is not None:
            todo.remove(ready)
            i, job = ready
            gpu = gpus[0] if gpus else None
            say(f"[{i}/{total}] {job.name}: running ({threads} thread(s){'' if gpu is None else f', GPU {gpu}'})")
            if on_start is not None:
                on_start(job)
            t0 = time.perf_counter()
            with _environment(_job_env(threads, gpu), threads):
                execute_job(job.target_name, job.params, job.run_dir)
            finish(i, job, t0)
        return [Path(j.run_dir) for j in jobs]
    running: dict[tuple[int, ...], tuple[subprocess.Popen, int, Job, float]] = {}
    last_start = -math.inf
    try:
        while True:
            ready = next_ready()
            if ready is None and not running:
                break  # all done, or what is left comes after failed jobs (named above)
            free = [s for s in range(workers) if not any(s in slots for slots in running)]
            if ready is not None and len(free) >= min(ready[1].width, workers) \
                    and time.perf_counter() - last_start >= stagger:
                todo.remove(ready)
                i, job = ready
                slots = tuple(free[: min(job.width, workers)])
                gpu = ",".join(gpus[s % len(gpus)] for s in slots) if gpus else None
                job_threads = threads * len(slots)
                if on_start is not None:
                    on_start(job)
                proc = _start(job, _job_env(job_threads, gpu))
                running[slots] = proc, i, job, time.perf_counter()
                last_start = time.perf_counter()
                say(f"[{i}/{total}] {job.name}: running in process {proc.pid} ({job_threads} thread(s)"
                    f"{'' if gpu is None else f', GPU {gpu}'}; log {Path(job.run_dir) / 'job.log'})")
                continue  # another may start at once (after the stagger)
            time.sleep(poll)
            for slots, (proc, i, job, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slots]
                if proc.returncode == 0:
                    finish(i, job, t0)
                else:
                    fail(i, job, f"exit {proc.returncode}; log {Path(job.run_dir) / 'job.log'}",
                         f"FAILED, exit code {proc.returncode}")
    finally:
        _stop([p for p, *_ in running.values()])
    if failed:
        raise HistganError(f"{len(failed)} job(s) failed: {'; '.join(failed)}; fix the cause and rerun "
                           "(finished jobs are skipped, interrupted ones resume)")
    return [Path(j.run_dir) for j in jobs]


def _check_order(jobs: Sequence[Job]) -> None:
    """No job comes after itself and no jobs wait for each other in a cycle (an ``after`` naming no job
    of the list is allowed: it counts as finished before)."""
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        if job.name in job.after:
            raise HistganError(f"job {job.name} cannot come after itself")
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2 or name not in by_name:
            return
        if state.get(name) == 1:
            raise HistganError(f"jobs wait for each other in a cycle: {' -> '.join(path + (name,))}")
        state[name] = 1
        for a in by_name[name].after:
            visit(a, path + (name,))
        state[name] = 2

    for job in jobs:
        visit(job.name, ())


def _main(argv: Sequence[str]) -> int:
    """Child process: run the one job given as JSON; SIGTERM ends it like Ctrl-C (kernels shut down).

    torch is not imported here: a job that uses it takes its thread count from ``OMP_NUM_THREADS``
    (set by :func:`_start`), which torch reads when it first runs in parallel; a notebook job's kernel
    inherits the variable and this process never needs torch (1.7 s of imports saved per job).
    """
    from histgan.io import skip_iri_syntax_checker

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    skip_iri_syntax_checker()
    spec = json.loads(argv[0])
    execute_job(spec["target"], spec["params"], spec["run_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
