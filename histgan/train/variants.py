"""The main job's training as jobs: the paper's four variants and the reference masker, each resumable.

:func:`variant_jobs` makes the jobs that :func:`histgan.train.parallel.run_parallel` runs side by side;
:func:`train_run` is the function a variant's job calls (:func:`histgan.train.loop.fit` from plain
JSON parameters).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from histgan.train.checkpoint import list_checkpoints
from histgan.train.loop import fit

__all__ = ["train_run", "variant_jobs"]


def train_run(run_dir: str, preset: str = "quick", resume: bool | str = "auto", progress: bool = False,
              **overrides: Any) -> Path:
    """Train one run from plain (JSON) parameters: the function form of a parallel job.

    ``train_run("runs/a", "cpu", variant="cyclegan")`` is ``fit(make_config("cpu", run_dir="runs/a",
    variant="cyclegan"))``; ``resume="auto"`` resumes when the folder holds a checkpoint, so a killed
    job continues when :func:`histgan.train.parallel.run_parallel` runs it again.

    Args:
        run_dir: the run folder. preset: a :data:`histgan.config.PRESETS` name.
        resume: ``True``, ``False`` or ``"auto"``. progress: show the bar.
        **overrides: :class:`TrainConfig` fields (``variant``, ``data``, ``steps``, ...).
    """
    from histgan.config import make_config

    config = make_config(preset, run_dir=str(run_dir), **overrides)
    if resume == "auto":
        resume = bool(list_checkpoints(run_dir)) or (Path(run_dir) / "checkpoints" / "latest.pt").is_file()
    return fit(config, resume=bool(resume), progress=progress)


def variant_jobs(runs: str | os.PathLike, data: str | os.PathLike, preset: str = "quick", steps: int | None = None,
                 masker_steps: int | None = None, progress: bool = True) -> list:
    """Jobs for :func:`histgan.train.parallel.run_parallel` that train the paper's four variants into
    ``runs/variant=<name>/`` (the names :func:`histgan.book.sweep.run_id` gives), the longest first, and — with
    ``masker_steps`` — the reference masker (:func:`histgan.train.masker.fit_masker`) into
    ``runs/variant=histgan_bi/masker/``, where ``translate --checkpoint`` of that run finds it.

    Every job resumes its folder (``resume="auto"``), so running the jobs again after an interruption
    finishes what was left and skips what was done.
    """
    from histgan.config import VARIANTS
    from histgan.train.parallel import Job

    runs = Path(runs)
    jobs = [Job(name=v, run_dir=runs / f"variant={v}", target="histgan.train.variants:train_run",
                params={"run_dir": str(runs / f"variant={v}"), "preset": preset, "variant": v, "data": str(data),
                        "resume": "auto", "progress": progress, **({} if steps is None else {"steps": steps})})
            for v in reversed(VARIANTS)]  # histgan_bi and histgan_uni take longest: start them first
    if masker_steps is not None:
        masker = runs / "variant=histgan_bi" / "masker"
        jobs.append(Job(name="masker", run_dir=masker, target="histgan.train.masker:fit_masker",
                        params={"data_root": str(data), "run_dir": str(masker), "steps": masker_steps,
                                "resume": "auto", "progress": progress}))
    return jobs
