"""Evaluating trained runs with the paper's protocol (:func:`histgan.eval.evaluate.evaluate`): every numbered
checkpoint of a run on a subset of pairs (the colour-vs-shape curve), and several runs beside the
baselines into one report (``python -m histgan evaluate``, :func:`histgan.eval.report.write_report`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from histgan.errors import HistganError
from histgan.eval.baselines import BASELINES
from histgan.eval.evaluate import evaluate
from histgan.eval.report import write_report
from histgan.eval.results import EvalData, EvalResult, load_eval_data
from histgan.train.runtime import select_device

__all__ = ["evaluate_checkpoints", "evaluate_runs"]


def evaluate_checkpoints(run_dir: str | os.PathLike, data: EvalData | str | os.PathLike, pairs: str | int = 4,
                         batch_size: int = 16, device: str = "cpu", progress: bool = True) -> list[EvalResult]:
    """Evaluate every numbered checkpoint of a run on a subset (for the colour-vs-shape scatter), no realism.

    Returns:
        One :class:`EvalResult` per checkpoint, ordered by step, named ``"<variant>@<step>"``.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist. HistganError: it holds no numbered checkpoint.
    """
    from histgan.inference import load_run
    from histgan.train.checkpoint import list_checkpoints

    device = str(select_device(device))
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    paths = list_checkpoints(run_dir)
    if not paths:
        raise HistganError(f"{run_dir} holds no numbered checkpoints (checkpoints/step_*.pt)")
    data = data if isinstance(data, EvalData) else load_eval_data(data)
    results = []
    for path in paths:
        run = load_run(run_dir, checkpoint=path, device=device)
        results.append(evaluate(run, data, pairs, batch_size, device, progress,
                                name=f"{run.config.variant}@{run.step}", n_samples=0, realism=False))
    return results


def evaluate_runs(runs: Sequence[str | os.PathLike], data: str | os.PathLike, out_dir: str | os.PathLike,
                  pairs: str | int = "all", baselines: bool = True, checkpoint_pairs: int = 4,
                  batch_size: int = 16, device: str = "cpu", size: int | None = None,
                  progress: bool = True) -> dict[str, Path]:
    """Evaluate runs (and the baselines) on ``data`` and :func:`write_report` into ``out_dir``.

    What ``python -m histgan evaluate`` does. A row is named by its run's variant, or
    ``<variant>_<run folder>`` when two runs share a variant. ``checkpoint_pairs = 0`` skips the
    per-checkpoint evaluation (and the colour-vs-shape figure).
    """
    from histgan.inference import load_run

    device = str(select_device(device))
    if not runs and not baselines:
        raise ValueError("nothing to evaluate: give --runs, or leave the baselines on")
    missing = [str(r) for r in runs if not Path(r).is_dir()]
    if missing:
        raise FileNotFoundError(f"run directory {missing[0]} does not exist")
    ev = load_eval_data(data, size=size)
    models = {}
    for run in runs:
        translator = load_run(run, device=device)
        name = translator.config.variant
        models[name if name not in models else f"{name}_{Path(run).name}"] = (translator, run)
    results = {n: evaluate(m, ev, pairs, batch_size, device, progress, name=n) for n, (m, _) in models.items()}
    for n, (_, run) in models.items():
        results[n].extra["run_dir"] = str(run)
    if baselines:
        results.update({n: evaluate(f, ev, pairs, batch_size, device, progress, name=n) for n, f in BASELINES.items()})
    sweeps = None
    if checkpoint_pairs:
        sweeps = {n: evaluate_checkpoints(run, ev, checkpoint_pairs, batch_size, device, progress)
                  for n, (_, run) in models.items()}
    return write_report(results, out_dir, sweeps)
