"""The main job's stages, one builder each: the synthetic data, training, one stage per notebook of
:data:`NOTEBOOKS`, and the HTML book. A builder returns a :class:`~histgan.book.job.Stage`: what it
does, what it writes, and what its key hashes (:mod:`histgan.book.keys`).

Adding a notebook to the book is one line in :data:`NOTEBOOKS` (and one in ``_toc.yml``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from histgan.book.job import Job, Stage
from histgan.book.keys import module_sources, notebook_sources
from histgan.book.notebooks import execute_notebook
from histgan.errors import HistganError

__all__ = ["NotebookStage", "NOTEBOOKS", "DOMAIN", "MASKER_STEPS", "train_jobs", "notebook_stage", "job_folder", "data_stage",
           "train_stage", "book_sources", "build_book", "book_stage"]


@dataclass(frozen=True)
class NotebookStage:
    """One notebook of the book and the parameters the main job runs it with."""

    name: str  # file stem in notebooks/, e.g. "01_histogram"; executed to book/executed/<name>.ipynb
    main: dict[str, Any]  # main-job parameters; "{data}", "{runs}", "{preset}" in strings are filled in
    quick: dict[str, Any] = field(default_factory=dict)  # parameters of --quick (besides the defaults)
    needs: tuple[str, ...] = ()  # names of earlier stages whose outputs the notebook reads ("data", ...)
    title: str = ""  # what the progress line says the notebook does
    reads: tuple[str, ...] = ()  # other files it executes (e.g. a notebook run by papermill), from the root
    clears: tuple[str, ...] = ()  # folders it trains into ("{runs}/..."): removed when its key changed
    wide: bool = False  # runs jobs of its own side by side: takes every slot of the main job's pool

    def parameters(self, job: Job) -> dict[str, Any]:
        """The parameters this notebook runs with in ``job``: ``main`` or ``quick``, with ``{data}``,
        ``{runs}`` and ``{preset}`` filled in."""
        return {k: _format(v, _folders(job)) for k, v in (self.quick if job.quick else self.main).items()}


#: The book's notebooks, in order: (notebook, parameters) stages of the main job.
NOTEBOOKS: tuple[NotebookStage, ...] = (
    NotebookStage("01_histogram", main={"image_size": 256, "match_size": 128, "match_steps": 300},
                  quick={"image_size": 64, "match_size": 32}, title="the differentiable colour histogram"),
    NotebookStage("02_model", main={"preset": "{preset}"}, title="building the model"),
    # The training page shows the histgan_bi run of the train stage (resume="auto" finds it finished);
    # the evaluation page evaluates all four runs (folders named variant=<name>, as histgan.book.sweep names
    # runs) and the masker in the histgan_bi run's folder.
    NotebookStage("03_training", main={"variant": "histgan_bi", "preset": "{preset}", "data": "{data}",
                                       "run_dir": "{runs}/variants/variant=histgan_bi", "resume": "auto"},
                  quick={"data": "{data}", "run_dir": "{runs}/variants/variant=histgan_bi", "resume": "auto"},
                  needs=("data", "train"), title="the histgan_bi run",
                  reads=("benchmarks/results/ablation_translator.json", "benchmarks/results/edge_rims.json")),
    NotebookStage("04_evaluation", main={"runs": "{runs}/variants", "data": "{data}", "train_preset": "{preset}",
                                         "train_steps": None, "checkpoint_pairs": 4,
                                         "masker": "{runs}/variants/variant=histgan_bi/masker"},
                  quick={"runs": "{runs}/variants", "data": "{data}",
                         "masker": "{runs}/variants/variant=histgan_bi/masker"},
                  needs=("data", "train"), title="evaluation of the four runs and the baselines"),
    NotebookStage("05_sweeps", main={"name": "lambda_hist", "lambda_hist": [0, 10], "preset": "{preset}", "steps": 300,
                                     "data": "{data}", "out": "{runs}/sweeps", "pairs": 8},
                  needs=("data",), title="a λ_hist sweep, notebook 03 via papermill, two runs at a time",
                  clears=("{runs}/sweeps/lambda_hist",), wide=True),
    NotebookStage("06_colour_space", main={"run_dir": "{runs}/variants/variant=histgan_bi", "data": "{data}",
                                           "morph_inputs": 4, "frames": 11, "refine_pairs": 16,
                                           "refine_steps": [10, 50, 200]},
                  quick={"run_dir": "{runs}/variants/variant=histgan_bi", "data": "{data}"},
                  needs=("data", "train"), title="the colour code as a latent space: morphing and refinement"),
    NotebookStage("07_latent_space", main={"data": "{data}", "run_dir": "{runs}/dcgan", "steps": 600, "size": 64,
                                           "batch_size": 32, "invert_steps": 200, "restarts": 3, "set_size": 6,
                                           "n_test": 8},
                  quick={"data": "{data}", "run_dir": "{runs}/dcgan"}, needs=("data",),
                  title="a DCGAN of knees: generation, inversion, morphing, latent arithmetic",
                  clears=("{runs}/dcgan",)),
)


def _format(value: Any, folders: dict[str, str]) -> Any:
    return value.format(**folders) if isinstance(value, str) else value


def _folders(job: Job) -> dict[str, str]:
    return {"data": str(job.data), "runs": str(job.runs), "preset": job.preset}


def notebook_stage(job: Job, spec: NotebookStage) -> Stage:
    """Run ``notebooks/<name>.py`` with ``spec``'s parameters into ``book/executed/<name>.ipynb``.

    In the pipeline's pool the notebook is one job (:func:`histgan.book.notebooks.run_notebook_job`),
    which the pipeline runs after the jobs of the stages it needs; its log is
    ``_build/.stages/jobs/<name>/job.log``."""
    from histgan.train import parallel

    params = spec.parameters(job)
    source = job.root / "notebooks" / f"{spec.name}.py"
    dest = job.executed / f"{spec.name}.ipynb"
    pool_job = parallel.Job(name=spec.name, run_dir=job_folder(job, spec.name),
                            target="histgan.book.notebooks:run_notebook_job",
                            params={"notebook": str(source), "run_dir": str(job.executed), "parameters": params},
                            width=parallel.ALL_SLOTS if spec.wide else 1)
    return Stage(name=spec.name, label=f"notebook {spec.name}" + (f" ({spec.title})" if spec.title else ""),
                 action=lambda: execute_notebook(source, dest, params, source.parent),
                 outputs=(dest,), inputs=(source, *notebook_sources(job.root, source),
                                          *(job.root / r for r in spec.reads)), params=params,
                 needs=spec.needs, clears=tuple(Path(_format(c, _folders(job))) for c in spec.clears),
                 jobs=(pool_job,))


def job_folder(job: Job, name: str) -> Path:
    """Where a notebook stage's pool job keeps its log and completion marker."""
    return job.site / "_build" / ".stages" / "jobs" / name


def data_stage(job: Job) -> Stage:
    """Write the synthetic knee benchmark of ``job.preset`` (the :data:`DOMAIN` Y domain) into ``job.data``."""
    from histgan.data.synthetic import PRESETS

    preset = job.preset
    spec = PRESETS[preset]
    params = {"preset": preset, "size": spec.size, "n_train": spec.n_train, "n_test": spec.n_test, "seed": 0}

    def action() -> None:
        from histgan.data.synthetic import write_dataset

        write_dataset(job.data, size=spec.size, n_train=spec.n_train, n_test=spec.n_test, seed=0, domain=DOMAIN)

    sources = module_sources(job.root, {"histgan.data.synthetic"})
    return Stage(name="data", label=f"data: synthetic knees ({preset} preset, {DOMAIN} domain) into {job.data}",
                 action=action, outputs=(job.data / "meta.json",), inputs=tuple(sources),
                 params={**params, "domain": DOMAIN})


#: The Y domain of the main job's benchmark (``plain`` is the earlier one: ``data synth --domain plain``).
DOMAIN = "photo"
#: Masker training steps per data preset (the quick one only checks that the stage runs).
MASKER_STEPS = {"quick": 20, "cpu": 500, "paper": 1000}


def train_jobs(job: Job) -> list:
    """The train stage's jobs: the four variants of Table 2 and the reference masker."""
    from histgan.train.variants import variant_jobs

    return variant_jobs(job.runs / "variants", job.data, job.preset, masker_steps=MASKER_STEPS[job.preset])


def train_stage(job: Job) -> Stage:
    """Train :func:`train_jobs` side by side (:func:`histgan.train.parallel.run_parallel`); an interrupted
    stage resumes its runs, one whose key changed starts them afresh (its ``clears``)."""
    from histgan.train.parallel import MARKER, run_parallel
    from histgan.progress import forward_progress

    jobs = train_jobs(job)

    def action() -> None:
        with forward_progress(whole_lines=True):  # the runs' progress bars reach this terminal, line by line
            run_parallel(jobs)

    params = {"jobs": [{"name": j.name, "target": j.target_name, "params": j.params} for j in jobs]}
    sources = module_sources(job.root, {"histgan.train.variants", "histgan.train.masker", "histgan.train.parallel"})
    return Stage(name="train", label=f"train: {', '.join(j.name for j in jobs)} side by side", action=action,
                 outputs=tuple(j.run_dir / MARKER for j in jobs), inputs=tuple(sources), params=params,
                 needs=("data",), clears=tuple(j.run_dir for j in jobs), jobs=tuple(jobs), resumes=True)


def book_sources(root: Path) -> list[Path]:
    """The book's configuration and pages under ``root`` (not the executed notebooks nor the npm assets)."""
    pages = [p for p in (root / "book").rglob("*") if p.is_file() and "executed" not in p.parts
             and "offline" not in p.parts]
    return [root / "_config.yml", root / "_toc.yml", *pages]


def build_book(site: Path) -> Path:
    """``jupyter-book build <site> -W -n --keep-going``; returns the built ``index.html``.

    Raises:
        HistganError: when the build fails or warns (warnings are errors), with the log's tail.
    """
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.is_file() else "jupyter-book", "build", str(site), "-W", "-n", "--keep-going"]
    done = subprocess.run(cmd, cwd=site, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise HistganError(f"the book build failed (warnings are errors): {' '.join(cmd)}\n{tail}")
    return site / "_build" / "html" / "index.html"


def book_stage(job: Job, notebook_names: Sequence[str]) -> Stage:
    """Build the HTML book from the executed notebooks (:func:`build_book`)."""
    return Stage(name="book", label=f"book: jupyter-book build -W into {job.html}",
                 action=lambda: build_book(job.site), outputs=(job.html / "index.html",),
                 inputs=tuple(book_sources(job.site)), params={}, needs=tuple(notebook_names))

