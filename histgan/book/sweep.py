"""Batch experiments: execute the training notebook for every point of a parameter grid, then collect.

:func:`run_sweep` expands a grid (``{"lambda_hist": [0, 2, 10], "bins": [16, 32]}`` → 6 points) and
executes ``notebooks/03_training.py`` with papermill once per point into ``<out>/<name>/<run-id>/``.
That folder is the point's training run (:func:`histgan.train.loop.fit`: config, losses, samples,
checkpoints) plus the executed notebook ``03_training.ipynb`` and, written atomically as the very
last step, the completion marker ``sweep_done.json`` holding the point's parameters.

* A point whose marker exists is **skipped** (nothing is retrained); if its parameters differ from
  the requested ones, the sweep stops before executing anything.
* A point without a marker (never started, interrupted, failed) is executed again; training
  **resumes** from the run's newest readable checkpoint. The notebook is executed as the book's
  notebooks are (:func:`histgan.book.notebooks.execute_notebook`): into ``03_training.running.ipynb`` while it
  runs, published as ``03_training.ipynb`` only when every cell succeeded.
* ``jobs > 1`` runs points side by side, each in its own process with its share of the threads or
  its own GPU (:func:`histgan.train.parallel.run_parallel`); ``shard=(I, N)`` runs every N-th point from
  I on, so N machines can fill one sweep folder that :func:`collect` then tabulates.

Each point's job also evaluates its run once it is trained (:func:`histgan.eval.evaluate.evaluate` on
the first ``pairs × pairs`` test pairs, ``pairs`` as given to :func:`run_sweep`), side by side like the
training, and caches the summary as ``eval.json`` in the run, before the marker is written.
:func:`collect` reads those summaries (evaluating any run whose cache does not match its data, pairs and
newest checkpoint, e.g. one finished before), and writes one table, ``<out>/<name>/sweep.csv`` and
``sweep.json``, one row per run. :func:`plot_sweep` draws ΔE against λ_hist, B and K, and shape fidelity
against colour.
"""

from __future__ import annotations

import ast
import csv
import io
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from histgan.errors import HistganError
from histgan.io import atomic_write_json, atomic_write_text
from histgan.book.notebooks import run_notebook_job
from histgan.train.parallel import MARKER, Job, default_workers, run_parallel, shard as take_shard

__all__ = ["DEFAULT_NOTEBOOK", "notebook_parameters", "expand_grid", "run_id", "run_sweep", "run_point", "collect",
           "plot_sweep"]

def _training_notebook() -> Path:
    """The training notebook (notebook 3 of the book): in a source checkout it lies next to the package;
    an installed package has its copy in ``<prefix>/share/histgan/notebooks/`` (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "notebooks" / "03_training.py"
    installed = Path(sys.prefix) / "share" / "histgan" / "notebooks" / "03_training.py"
    return checkout if checkout.is_file() or not installed.is_file() else installed


#: The training notebook the sweep executes by default (:func:`_training_notebook`).
DEFAULT_NOTEBOOK = _training_notebook()
#: Notebook parameters the sweep sets itself (per run), so they cannot be grid axes.
_RESERVED = ("data", "run_dir", "resume", "progress")
#: Columns of the collected table taken from each run's config (the resolved values).
_CONFIG_COLUMNS = ("variant", "steps", "lambda_gan", "lambda_cycle", "lambda_idt", "lambda_hist", "bins",
                   "bandwidth", "seed")
#: The shape columns of the collected table, in the evaluation report's order (the ``*_gt`` ones exist for
#: synthetic data only); :func:`plot_sweep` plots the first that every row has.
_SHAPE_COLUMNS = ("ssim_gt_fg_mean", "ssim_gt_fg_lowpass_mean", "ssim_gt_mean", "psnr_gt_mean", "delta_e_gt_mean",
                  "ssim_input_lum_mean", "iou_mean")
#: Columns of the collected table taken from each run's evaluation summary.
_SUMMARY_COLUMNS = ("delta_e_mean", "delta_e_std", "grade_of_mean", "delta_e2000_mean", *_SHAPE_COLUMNS, "n_pairs")


def notebook_parameters(notebook: str | os.PathLike = DEFAULT_NOTEBOOK) -> dict[str, Any]:
    """Names and default values of the ``parameters``-tagged cell of ``notebook``.

    Raises:
        FileNotFoundError: no such notebook. HistganError: it has no ``parameters`` cell.
    """
    import jupytext

    if not Path(notebook).is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist; pass the training notebook "
                                "(notebooks/03_training.py in a source checkout)")
    for cell in jupytext.read(notebook).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse(cell.source).body
                    if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)}
    raise HistganError(f"notebook {notebook} has no cell tagged 'parameters'")


def expand_grid(grid: Mapping[str, Sequence[Any]], base_params: Mapping[str, Any] | None = None,
                known: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """All points of ``grid`` (Cartesian product, in the grid's key order), each on top of ``base_params``.

    Args:
        grid: parameter name → the values to try, e.g. ``{"lambda_hist": [0, 2, 10]}``.
        base_params: parameters every point shares (overridden by the grid).
        known: the notebook's parameter names; other names raise (``None``: no check).

    Raises:
        ValueError: an unknown or reserved name, or an axis with no values.
    """
    base = dict(base_params or {})
    for key in [*grid, *base]:
        if key in _RESERVED:
            raise ValueError(f"{key!r} is set by the sweep for every run; it cannot be a grid or base parameter")
        if known is not None and key not in known:
            raise ValueError(f"{key!r} is not a parameter of the training notebook; known: "
                             f"{sorted(set(known) - set(_RESERVED))}")
    axes = {}
    for key, values in grid.items():
        values = [values] if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) else list(values)
        if not values:
            raise ValueError(f"grid axis {key!r} has no values")
        axes[key] = values
    return [{**base, **dict(zip(axes, combo))} for combo in itertools.product(*axes.values())]


def _format_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def run_id(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """Folder name of a run: ``key=value`` for ``variant`` and the grid keys, joined by commas.

    Example: ``variant=histgan_bi,lambda_hist=2,bins=16``.
    """
    keys = ["variant", *[k for k in keys if k != "variant"]]
    return ",".join(f"{k}={_format_value(params.get(k, 'default'))}" for k in keys)


def _as_json(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(params)))


def _plan(name: str, grid: Mapping[str, Sequence[Any]], base: dict[str, Any], nb_path: Path,
          sweep_dir: Path, data: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(run_id, params)`` per point; checks names, duplicates and finished runs' parameters and data."""
    if not name or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"sweep name must be letters, digits, '.', '_' or '-', got {name!r}")
    defaults = notebook_parameters(nb_path)
    if "variant" in defaults and "variant" not in grid:  # every run id names its variant
        base = {"variant": defaults["variant"], **base}
    points = expand_grid(grid, base, known=list(defaults))
    plan = [(run_id(p, list(grid)), _as_json(p)) for p in points]
    ids = [rid for rid, _ in plan]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the grid gives two runs the same folder name ({sorted(i for i in ids if ids.count(i) > 1)[0]}); "
                         "remove duplicate values")
    for rid, params in plan:
        marker = sweep_dir / rid / MARKER
        if not marker.is_file():
            continue
        done = json.loads(marker.read_text(encoding="utf-8"))
        before, now = {**done["parameters"], "data": done.get("data")}, {**params, "data": str(data)}
        diff = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        if diff:
            raise HistganError(f"run {marker.parent} finished with other values of {diff} than now requested; "
                               "use another --name (or delete that run folder)")
    return plan


def run_point(notebook: str, run_dir: str, parameters: dict[str, Any], pairs: int | None = None) -> None:
    """A sweep point as a job of :func:`histgan.train.parallel.run_parallel`: execute the training notebook
    (:func:`histgan.book.notebooks.run_notebook_job`), then, with ``pairs``, evaluate the run as
    :func:`collect` does with its default data (the run's own), caching the summary in ``eval.json``."""
    run_notebook_job(notebook, run_dir, parameters)
    if pairs is not None:
        _evaluate_run(Path(run_dir), None, pairs, "cpu")


def _jobs(plan: Sequence[tuple[str, dict[str, Any]]], nb_path: Path, sweep_dir: Path, data: Path,
          pairs: int | None) -> list[Job]:
    """One :class:`histgan.train.parallel.Job` per point (:func:`run_point`): the notebook with the point's
    parameters plus ``data``, ``run_dir``, ``resume="auto"`` (an interrupted run resumes from its newest
    checkpoint), and the evaluation of ``pairs × pairs`` test pairs."""
    return [Job(rid, sweep_dir / rid, run_point,
                {"notebook": str(nb_path), "run_dir": str(sweep_dir / rid), "pairs": pairs,
                 "parameters": {**params, "data": str(data), "run_dir": str(sweep_dir / rid), "resume": "auto",
                                "progress": False}},
                marker={"run_id": rid, "parameters": params, "notebook": str(nb_path), "data": str(data)})
            for rid, params in plan]


def run_sweep(name: str, grid: Mapping[str, Sequence[Any]], base_params: Mapping[str, Any] | None = None,
              notebook: str | os.PathLike = DEFAULT_NOTEBOOK, out: str | os.PathLike = "runs",
              data: str | os.PathLike | None = None, steps: int | None = None,
              progress: bool = True, jobs: int | None = 1, threads: int | None = None,
              shard: tuple[int, int] = (0, 1), pairs: int | None = 4) -> list[Path]:
    """Execute the training notebook for every grid point into ``<out>/<name>/<run-id>/``.

    Args:
        name: the sweep's folder name under ``out``.
        grid: parameter name → values, e.g. ``{"variant": ["histgan_bi"], "lambda_hist": [0, 2, 10]}``.
        base_params: notebook parameters shared by all points (e.g. ``{"preset": "cpu"}``).
        notebook: the training notebook (``.py`` or ``.ipynb``) with a ``parameters`` cell.
        out: the folder that holds sweeps.
        data: the dataset for every run; ``None`` = ``<out>/<name>/data``, generated by the first run
            (with ``jobs > 1`` or shards, generate it first: two runs must not write it at once).
        steps: training steps of every run (``None``: the preset's).
        progress: print a line when a point starts, is skipped, or is done (the executed
            notebooks' own output stays in them).
        jobs: points run at once, each in its own process (:func:`histgan.train.parallel.run_parallel`);
            ``None``: :func:`histgan.train.parallel.default_workers`.
        threads: CPU threads per point (``None``: cores // jobs). Results are bit-identical between
            ``jobs`` settings on CPU when ``threads`` is the same.
        shard: ``(I, N)``: run only points ``I, I + N, I + 2N, …`` (0-based), so that N machines
            can share one sweep folder; :func:`collect` then tabulates them all.
        pairs: each point's job evaluates its run on ``pairs × pairs`` test pairs once trained (on the CPU,
            in the job's process, so side by side with the other points), for :func:`collect` called with
            the same ``pairs`` to read; ``None``: no evaluation in the jobs (collect does it).

    Returns:
        The run folders of this shard, in grid order (finished ones included).

    Raises:
        ValueError: a bad name, grid or shard. HistganError: a finished run has other parameters, or a run failed.
    """
    nb_path, sweep_dir = Path(notebook).resolve(), Path(out).resolve() / name
    base = {**(base_params or {}), **({} if steps is None else {"steps": steps})}
    data = Path(data).resolve() if data is not None else sweep_dir / "data"
    if pairs is not None and (isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1):
        raise ValueError(f"pairs must be an integer >= 1 or None, got {pairs!r}")
    todo = _jobs(take_shard(_plan(name, grid, base, nb_path, sweep_dir, data), *shard), nb_path, sweep_dir, data,
                 pairs)
    pending = [j for j in todo if not j.done]
    workers = default_workers(len(pending)) if jobs is None else jobs
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    if not data.exists() and workers > 1 and len(pending) > 1:  # the first run generates the data alone
        run_parallel(pending[:1], workers=1, threads=threads, progress=progress)
    return run_parallel(todo, workers=workers, threads=threads, progress=progress)


def _evaluate_run(run_dir: Path, data: str | os.PathLike | None, pairs: int, device: str) -> dict[str, Any]:
    """The run's evaluation summary, from ``eval.json`` if it matches (the newest numbered checkpoint's
    step, data, pairs), else computed. A matching cache is read without importing torch. The step is the
    one ``latest.pt`` holds once a run has finished (both are written at every checkpoint)."""
    from histgan.config import TrainConfig
    from histgan.train.run_files import newest_step

    config = TrainConfig.from_json(run_dir / "config.json")
    data = str(Path(data if data is not None else config.data).resolve())
    cache = run_dir / "eval.json"
    key = {"step": newest_step(run_dir), "data": data, "pairs": pairs}
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return saved["row"]
    from histgan.eval.evaluate import evaluate

    step = key["step"]
    summary = evaluate(run_dir, data, pairs=pairs, device=device, progress=False, n_samples=0).summary
    row = {"run_id": run_dir.name, **{k: getattr(config, k) for k in _CONFIG_COLUMNS},
           "step": step, **{k: summary[k] for k in _SUMMARY_COLUMNS if k in summary}}
    if row["bandwidth"] is None:  # the resolved B = L = 2 / K
        row["bandwidth"] = 2.0 / config.bins
    row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
    atomic_write_json(cache, {"key": key, "row": row})
    return row


def collect(name: str, out: str | os.PathLike = "runs", data: str | os.PathLike | None = None, pairs: int = 4,
            device: str = "cpu") -> list[dict[str, Any]]:
    """Evaluate every finished run of a sweep and write ``sweep.csv`` and ``sweep.json`` beside them.

    Args:
        name: the sweep's name; out: the folder that holds sweeps (as for :func:`run_sweep`).
        data: the test data; ``None`` = each run's training data folder (its ``testA/``, ``testB/``).
        pairs: evaluate the first ``pairs`` test inputs × ``pairs`` references (the full protocol is
            the evaluation page's job; a sweep compares runs).
        device: where the generators run.

    Returns:
        One row per finished run (sorted by run id): the run's resolved parameters, its step and the
        evaluation summary (``delta_e_mean``, ``grade_of_mean``, shape means, ...). Runs without a
        completion marker are left out and named in a warning.
    """
    import warnings

    sweep_dir = Path(out) / name
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep_dir} does not exist; run the sweep first")
    run_dirs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / "config.json").is_file())
    unfinished = [p.name for p in run_dirs if not (p / MARKER).is_file()]
    if unfinished:
        warnings.warn(f"left out {len(unfinished)} unfinished run(s) of sweep {name}: {unfinished}; rerun the sweep "
                      "to finish them", RuntimeWarning, stacklevel=2)
    rows = [_evaluate_run(p, data, pairs, device) for p in run_dirs if (p / MARKER).is_file()]
    if not rows:
        raise HistganError(f"sweep {sweep_dir} has no finished runs to collect")
    atomic_write_json(sweep_dir / "sweep.json", rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "sweep.csv", buf.getvalue())
    return rows


def _shape_column(rows: Sequence[Mapping[str, Any]]) -> str:
    """The first shape metric every row has (ground-truth SSIM on synthetic data)."""
    for key in _SHAPE_COLUMNS:
        if all(r.get(key) is not None for r in rows):
            return key
    raise ValueError("the rows have no shape metric in common")


def plot_sweep(rows: Sequence[Mapping[str, Any]]):
    """ΔE against λ_hist, B and K, and shape against ΔE; one line per setting of the other parameters.

    Args:
        rows: the table returned by :func:`collect`.

    Returns:
        a matplotlib ``Figure`` with four panels.
    """
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("no rows to plot")
    shape = _shape_column(rows)
    axes_of = {"lambda_hist": "λ_hist", "bandwidth": "bandwidth B", "bins": "bins K", "delta_e_mean": "mean ΔE"}
    varying = [k for k in _CONFIG_COLUMNS if len({json.dumps(r[k]) for r in rows}) > 1]
    fig = Figure(figsize=(16, 3.8), layout="constrained")
    for ax, x_key in zip(fig.subplots(1, 4), axes_of):
        y_key = shape if x_key == "delta_e_mean" else "delta_e_mean"
        others = [k for k in varying if k != x_key]
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for r in rows:
            groups.setdefault(", ".join(f"{k}={r[k]:g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                                        for k in others) or "all runs", []).append(r)
        for label, members in groups.items():
            members = sorted(members, key=lambda r: r[x_key])
            ax.plot([r[x_key] for r in members], [r[y_key] for r in members], "o-", ms=4, label=label)
        ax.set_xlabel(axes_of[x_key])
        ax.set_ylabel(y_key.removesuffix("_mean").replace("delta_e", "mean ΔE"))
        ax.set_title(f"{ax.get_ylabel()} vs. {axes_of[x_key]}", fontsize=9)
        ax.legend(fontsize=6)
    return fig
