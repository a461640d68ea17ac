"""The main job, ``make book`` = ``python -m histgan.book``: data → executed notebooks → HTML book.

The stages, each announced by a progress line (``[3/10] notebook 01_histogram ...``) and closed by
``... done in N s``:

1. ``data`` — the synthetic knee benchmark (:func:`histgan.data.synthetic.write_dataset`, ``cpu`` preset,
   the photographic Y domain) into ``data/synthetic/``.
2. ``train`` — the four variants of the paper's Table 2 and the reference masker, one job each,
   into ``runs/main/variants/variant=<name>/`` and ``variant=histgan_bi/masker/``. An interrupted
   stage resumes its runs; a stage whose key changed starts them afresh.
3. one stage per entry of :data:`histgan.book.stages.NOTEBOOKS` — ``notebooks/NN_name.py`` converted with jupytext and
   executed with papermill with the main job's parameters (injected into the notebook's
   ``parameters`` cell) into ``book/executed/NN_name.ipynb``, execution metadata stripped. The
   notebook runs in ``notebooks/`` (as in JupyterLab and under nbval); path parameters are absolute.
4. ``book`` — ``jupyter-book build . -W -n --keep-going`` (warnings are errors) into ``_build/html``.

The data stage runs first and the book last. In between, by default (:func:`pool_workers`), the
stages run one after another, the train stage's runs side by side (one process per core with one
thread each, or one per GPU) and each notebook with every core's threads. On a machine with more
cores (or GPUs) than the train stage has runs, or with ``--jobs N`` (N ≥ 2), the runs and the
notebooks share one pool of N workers (:func:`histgan.train.parallel.run_parallel`): a notebook
starts as soon as the stages it needs are done and a worker is free, so the pages that read only the
data run on workers the trainings leave idle, and the pages that show the runs start when the last
run ends. A stage that runs jobs of its own (the λ sweep) takes every worker. In the pool each job's
output goes to its log (a run's ``job.log``; a notebook's in ``_build/.stages/jobs/<name>/``); the
progress bars of all of them reach the terminal.

Every stage is skipped when its outputs exist and its *key* is unchanged: a hash of its parameters,
the contents of its input files (the notebook, the package's sources, the book's pages) and the keys
of the stages it reads. A second ``make book`` therefore only redoes what changed. ``--force``
ignores the keys.

``--quick`` runs the same pipeline with each notebook's quick parameters and the ``quick`` data
preset in a scratch folder (``--workdir``, default a new temporary folder): a smoke test of the
whole job in about a minute. ``--refresh-notebooks`` re-executes ``notebooks/*.ipynb`` in place with
their own (quick) defaults: the reference outputs nbval compares against.

The stages are built in :mod:`histgan.book.stages` and keyed by :mod:`histgan.book.keys`; this module
puts them in order and runs them. Adding a notebook to the book is one line in
:data:`histgan.book.stages.NOTEBOOKS` (and one in ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from histgan.book.job import Job, Stage
from histgan.book.keys import stage_key
from histgan.book.notebooks import refresh_notebooks
from histgan.book.stages import NOTEBOOKS, book_sources, book_stage, data_stage, notebook_stage, train_stage
from histgan.errors import HistganError
from histgan.io import atomic_write_json

__all__ = ["ROOT", "make_job", "stages", "run", "pool_workers", "headline", "main"]

#: The repository root (the folder holding ``_config.yml``, ``notebooks/`` and ``book/``).
ROOT = Path(__file__).resolve().parents[2]


def _copy_book_sources(job: Job) -> None:
    """For --quick: copy the book's pages and configuration into the scratch site."""
    for path in book_sources(job.root) + [job.root / "package.json", job.root / "package-lock.json"]:
        if path.is_file():
            dest = job.site / path.relative_to(job.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    offline = job.root / "book" / "_static" / "offline"
    if offline.is_dir():  # reuse the npm assets the repository already fetched
        shutil.copytree(offline, job.site / "book" / "_static" / "offline", dirs_exist_ok=True)


# ---- the pipeline -----------------------------------------------------------------------------------


def make_job(quick: bool = False, workdir: Path | None = None, force: bool = False, root: Path = ROOT,
             preset: str = "cpu") -> Job:
    """The main job (the book in ``root``, with the ``cpu`` or ``paper`` preset) or, with ``quick``, a smoke
    run with the ``quick`` preset in ``workdir`` (default: a new temporary folder), which gets a copy of the
    book's pages."""
    if preset not in ("cpu", "paper"):
        raise ValueError(f"preset must be 'cpu' or 'paper' (--quick is the quick one), got {preset!r}")
    if not quick:
        return Job(root=root, site=root, quick=False, force=force, preset=preset)
    site = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="histgan-book-"))
    job = Job(root=root, site=site.resolve(), quick=True, force=force, preset="quick")
    _copy_book_sources(job)
    return job


def stages(job: Job) -> list[Stage]:
    """The pipeline's stages in order: data and train (if a notebook needs them), the notebooks, the book."""
    notebook_stages = [notebook_stage(job, spec) for spec in NOTEBOOKS]
    needed = {n for s in notebook_stages for n in s.needs}
    first = [make(job) for name, make in (("data", data_stage), ("train", train_stage))
             if name in needed or (name == "data" and "train" in needed)]
    return first + notebook_stages + [book_stage(job, [s.name for s in notebook_stages])]


def _stamp_path(job: Job, stage: Stage) -> Path:
    return job.site / "_build" / ".stages" / f"{stage.name}.json"


def _clear_if_changed(started: Path, key: str, folders: Sequence[Path]) -> None:
    """Remove ``folders`` unless the stage last started with this ``key`` (then it was interrupted, and its
    runs resume); record the key. A stage whose inputs changed thus never resumes runs of the old code."""
    if not folders:
        return
    if not (started.is_file() and started.read_text(encoding="utf-8").strip() == key):
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    started.parent.mkdir(parents=True, exist_ok=True)
    started.write_text(key + "\n", encoding="utf-8")


def run(job: Job, only: Sequence[str] = (), workers: int | None = None) -> Path:
    """Run (or skip, when up to date) every stage of :func:`stages`; returns the book's ``index.html``.

    With more than one worker the stages that have jobs (the train stage's runs, each notebook) go
    into one pool (:func:`histgan.train.parallel.run_parallel`): a notebook starts as soon as the
    stages it needs are done and a slot is free, so the notebooks that read only the data run beside
    the trainings. With one worker the stages run one after another (the train stage still runs its
    jobs side by side).

    Args:
        job: where to read and write (:func:`make_job`).
        only: stage names to consider; the others are neither run nor checked (default: all).
        workers: slots of the pool (1: one stage after another); ``None``: :func:`pool_workers`.
    """
    from histgan.train.parallel import default_workers

    todo = stages(job)
    unknown = sorted(set(only) - {s.name for s in todo})
    if unknown:
        raise HistganError(f"unknown stage(s) {unknown}; the stages are {[s.name for s in todo]}")
    keys: dict[str, str] = {}
    plan: list[tuple[int, Stage, bool]] = []  # (number, stage, stale) of the stages considered
    for i, stage in enumerate(todo, 1):
        key = stage_key(stage, keys)
        keys[stage.name] = key
        if only and stage.name not in only:
            continue
        stamp = _stamp_path(job, stage)
        current = stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == key
        plan.append((i, stage, not (current and not job.force and all(p.exists() for p in stage.outputs))))
    stale = [(i, s) for i, s, redo in plan if redo]
    workers = pool_workers([s for _, s in stale]) if workers is None else workers
    start = time.monotonic()
    pooled = [(i, s) for i, s in stale if s.jobs] if workers > 1 else []
    for i, stage, redo in plan:
        if not redo:
            print(f"[{i}/{len(todo)}] {stage.label}: up to date, skipped", flush=True)
            continue
        if pooled and stage is pooled[0][1]:  # the pool: every stage with jobs, as its needs allow
            _run_pool(job, pooled, keys, len(todo), workers)
        if any(stage is s for _, s in pooled):
            continue
        print(f"[{i}/{len(todo)}] {stage.label} ...", flush=True)
        t0 = time.monotonic()
        _clear_if_changed(_stamp_path(job, stage).with_suffix(".started"), keys[stage.name], stage.clears)
        stage.action()
        _record(job, stage, keys[stage.name], time.monotonic() - t0)
        print(f"[{i}/{len(todo)}] {stage.label}: done in {time.monotonic() - t0:.0f} s", flush=True)
    index = job.html / "index.html"
    print(f"total {time.monotonic() - start:.0f} s. The book: {index}  (open file://{index})", flush=True)
    summary = job.runs / "variants" / "report" / "summary.json"
    if summary.is_file():
        print(headline(summary), flush=True)
    return index


def pool_workers(stages: Sequence[Stage], cpus: int | None = None, gpus: int | None = None) -> int:
    """The default ``--jobs``: the pool (one worker per core, or per GPU) only when there are more
    workers than any one stage has jobs; otherwise 1, one stage after another.

    With no more workers than the train stage has runs, that stage keeps every worker busy on its own,
    and a notebook runs faster alone with every core's threads than beside another with one: on the
    2-core machine of BENCHMARKS.md §20 the main job took 30 min 23 s one stage after another and
    33 min 31 s in the pool, and the colour-space page took 116 s with two threads, 205 s with one.
    With more workers than that, the pool gives the notebooks that need only the data the workers the
    trainings leave idle.
    """
    from histgan.train.parallel import default_workers

    widest = max((len(s.jobs) for s in stages), default=0)
    workers = default_workers(sum(len(s.jobs) for s in stages) or 1, cpus, gpus)
    return workers if workers > widest else 1


def _record(job: Job, stage: Stage, key: str, seconds: float) -> None:
    """The stage's stamp: its key (what makes it up to date), parameters and seconds."""
    atomic_write_json(_stamp_path(job, stage), {"key": key, "params": stage.params, "seconds": round(seconds, 1)})


def _run_pool(job: Job, pooled: Sequence[tuple[int, Stage]], keys: dict[str, str], total: int, workers: int) -> None:
    """Run the jobs of ``pooled`` stages in one :func:`~histgan.train.parallel.run_parallel` pool: stages
    that take every slot first, then those whose runs resume (the trainings), then the others (the
    notebooks) in the book's order. A stage is announced when its first job starts and recorded when
    its last one ends."""
    from dataclasses import replace

    from histgan.progress import forward_progress
    from histgan.train.parallel import ALL_SLOTS, MARKER, run_parallel

    order = sorted(pooled, key=lambda e: (not any(j.width >= ALL_SLOTS for j in e[1].jobs), not e[1].resumes))
    owner = {j.name: (i, stage) for i, stage in pooled for j in stage.jobs}
    jobs_of = {stage.name: tuple(j.name for j in stage.jobs) for _, stage in pooled}
    began: dict[str, float] = {}  # stage name -> when its first job started
    started: set[str] = set()  # the jobs started in this pool
    for _, stage in pooled:
        _clear_if_changed(_stamp_path(job, stage).with_suffix(".started"), keys[stage.name], stage.clears)
        for j in stage.jobs if not stage.resumes else ():  # e.g. a notebook: executed again, whole
            (Path(j.run_dir) / MARKER).unlink(missing_ok=True)
    for i, stage in pooled:  # runs that had all finished before (an interrupted stage, or --force)
        if all(j.done for j in stage.jobs):
            _record(job, stage, keys[stage.name], 0.0)
            print(f"[{i}/{total}] {stage.label}: its runs had finished before, done", flush=True)
    # a stage's jobs come after every pooled job of the stages it needs (the others are done already)
    jobs = [replace(j, after=(*j.after, *(n for need in stage.needs for n in jobs_of.get(need, ()))))
            for _, stage in order for j in stage.jobs]

    def on_start(pool_job) -> None:
        i, stage = owner[pool_job.name]
        started.add(pool_job.name)
        if stage.name not in began:
            began[stage.name] = time.monotonic()
            print(f"[{i}/{total}] {stage.label} ...", flush=True)
        if len(stage.jobs) > 1:
            print(f"[{i}/{total}] {stage.name}: {pool_job.name} started (log {Path(pool_job.run_dir) / 'job.log'})",
                  flush=True)

    def on_done(pool_job, seconds: float) -> None:
        i, stage = owner[pool_job.name]
        if len(stage.jobs) > 1:
            print(f"[{i}/{total}] {stage.name}: {pool_job.name} done in {seconds:.0f} s", flush=True)
        if all(j.done for j in stage.jobs):  # its last job (the marker is written before this call)
            elapsed = time.monotonic() - began[stage.name]
            _record(job, stage, keys[stage.name], elapsed)
            print(f"[{i}/{total}] {stage.label}: done in {elapsed:.0f} s", flush=True)

    try:
        with forward_progress(whole_lines=True):  # the runs' and notebooks' bars reach this terminal
            run_parallel(jobs, workers=workers, progress=False, on_start=on_start, on_done=on_done)
    except HistganError as exc:  # the failed jobs: started here, and without a completion marker
        logs = [f"--- {j.name}: the end of {Path(j.run_dir) / 'job.log'} ---\n{_tail(Path(j.run_dir) / 'job.log')}"
                for j in jobs if j.name in started and not j.done]
        raise HistganError("\n".join([str(exc), *logs])) from None


def _tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log (empty if there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def headline(summary: Path) -> str:
    """The book's headline in a few terminal lines: Table 2's mean ΔE per variant, its JIS grade, the
    ratio to the plain CycleGAN's, and the paper's number, from the evaluation's ``summary.json``."""
    from histgan.config import VARIANTS
    from histgan.eval.report import PAPER_DELTA_E

    models = json.loads(summary.read_text(encoding="utf-8"))["models"]
    rows = [v for v in VARIANTS if v in models]
    base = models.get("cyclegan", {}).get("delta_e_mean")
    lines = [f"Table 2 ({summary.parent}): mean ΔE over {models[rows[0]]['n_pairs']} pairs" if rows else "",
             f"  {'model':12s} {'ΔE':>6s}  {'JIS':8s} {'CycleGAN / model':>16s}  {'paper ΔE':>8s}"]
    for v in rows:
        d = models[v]["delta_e_mean"]
        ratio = f"{base / d:.1f}×" if base and d else "–"
        lines.append(f"  {v:12s} {d:6.2f}  {models[v]['grade_of_mean']:8s} {ratio:>16s}  {PAPER_DELTA_E[v]:8.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m histgan.book``; returns the exit code (2 for errors a user can fix)."""
    parser = argparse.ArgumentParser(prog="python -m histgan.book", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: quick parameters, scratch folder")
    parser.add_argument("--workdir", type=Path, help="scratch folder of --quick (default: a new temporary one)")
    parser.add_argument("--preset", default="cpu", choices=("cpu", "paper"),
                        help="data and training size: cpu (default, about 35 min on 2 cores) or paper (GPU)")
    parser.add_argument("--force", action="store_true", help="redo every stage even if up to date")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="N >= 2: trainings and notebooks in one pool of N workers; 1: one stage after another "
                             "(default: the pool, one worker per core or GPU, only with more workers than the train "
                             "stage has runs)")
    parser.add_argument("--only", nargs="+", default=(), metavar="STAGE", help="run only these stages")
    parser.add_argument("--refresh-notebooks", nargs="*", metavar="NAME",
                        help="re-execute notebooks/*.ipynb in place with their quick defaults (nbval references)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")
    try:
        if args.refresh_notebooks is not None:
            refresh_notebooks(ROOT, args.refresh_notebooks)
            return 0
        run(make_job(args.quick, args.workdir, args.force, preset=args.preset), args.only, args.jobs)
        return 0
    except KeyboardInterrupt:
        print("histgan.book.pipeline: interrupted", file=sys.stderr)
        return 130
    except (HistganError, ValueError, FileNotFoundError) as exc:
        print(f"histgan.book.pipeline: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
