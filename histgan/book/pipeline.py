"""The main job, ``make book`` = ``python -m histgan.book``: data → executed notebooks → HTML book.

Stages run in order, each announced by a progress line (``[2/7] notebook 01_histogram ...``):

1. ``data`` — the synthetic knee benchmark (:func:`histgan.data.synthetic.write_dataset`, ``cpu`` preset,
   the photographic Y domain) into ``data/synthetic/``.
2. ``train`` — the four variants of the paper's Table 2 and the reference masker, side by side
   (:func:`histgan.train.parallel.run_parallel`: one job per core with one thread each, or one per GPU),
   into ``runs/main/variants/variant=<name>/`` and ``variant=histgan_bi/masker/``. An interrupted
   stage resumes its runs; a stage whose key changed starts them afresh.
3. one stage per entry of :data:`NOTEBOOKS` — ``notebooks/NN_name.py`` converted with jupytext and
   executed with papermill with the main job's parameters (injected into the notebook's
   ``parameters`` cell) into ``book/executed/NN_name.ipynb``, execution metadata stripped. The
   notebook runs in ``notebooks/`` (as in JupyterLab and under nbval); path parameters are absolute.
4. ``book`` — ``jupyter-book build . -W -n --keep-going`` (warnings are errors) into ``_build/html``.

Every stage is skipped when its outputs exist and its *key* is unchanged: a hash of its parameters,
the contents of its input files (the notebook, the package's sources, the book's pages) and the keys
of the stages it reads. A second ``make book`` therefore only redoes what changed. ``--force``
ignores the keys.

``--quick`` runs the same pipeline with each notebook's quick parameters and the ``quick`` data
preset in a scratch folder (``--workdir``, default a new temporary folder): a smoke test of the
whole job in about a minute. ``--refresh-notebooks`` re-executes ``notebooks/*.ipynb`` in place with
their own (quick) defaults: the reference outputs nbval compares against.

Adding a notebook to the book is one line in :data:`NOTEBOOKS` (and one in ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from histgan.errors import HistganError
from histgan.io import atomic_write_json
from histgan.book.notebooks import execute_notebook, refresh_notebooks, strip_notebook

__all__ = ["NotebookStage", "NOTEBOOKS", "DOMAIN", "Job", "Stage", "make_job", "stages", "train_jobs", "run", "headline",
           "main"]

#: The repository root (the folder holding ``_config.yml``, ``notebooks/`` and ``book/``).
ROOT = Path(__file__).resolve().parents[2]


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
                  reads=("benchmarks/results/ablation_translator.json",)),
    NotebookStage("04_evaluation", main={"runs": "{runs}/variants", "data": "{data}", "train_preset": "{preset}",
                                         "train_steps": None, "checkpoint_pairs": 4,
                                         "masker": "{runs}/variants/variant=histgan_bi/masker"},
                  quick={"runs": "{runs}/variants", "data": "{data}",
                         "masker": "{runs}/variants/variant=histgan_bi/masker"},
                  needs=("data", "train"), title="evaluation of the four runs and the baselines"),
    NotebookStage("05_sweeps", main={"name": "lambda_hist", "lambda_hist": [0, 10], "preset": "{preset}", "steps": 300,
                                     "data": "{data}", "out": "{runs}/sweeps", "pairs": 8},
                  needs=("data",), title="a λ_hist sweep, notebook 03 via papermill, two runs at a time",
                  clears=("{runs}/sweeps/lambda_hist",)),
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


@dataclass(frozen=True)
class Job:
    """Where one run of the pipeline reads and writes."""

    root: Path  # sources: notebooks/, histgan/ and the book's pages
    site: Path  # the folder jupyter-book builds: root for the main job, a scratch copy for --quick
    quick: bool  # quick parameters and data preset instead of the main job's
    force: bool = False  # redo every stage even when its key is unchanged
    preset: str = "cpu"  # data and training preset of the main job: "cpu" (default) or "paper" (GPU)

    @property
    def data(self) -> Path:
        return self.site / "data" / ("synthetic" if self.preset in ("cpu", "quick") else f"synthetic-{self.preset}")

    @property
    def runs(self) -> Path:
        return self.site / "runs" / {"cpu": "main"}.get(self.preset, self.preset)

    @property
    def executed(self) -> Path:
        return self.site / "book" / "executed"

    @property
    def html(self) -> Path:
        return self.site / "_build" / "html"


@dataclass(frozen=True)
class Stage:
    """A step of the pipeline: skipped when ``outputs`` exist and the key stored beside them matches."""

    name: str  # short name other stages refer to in their ``needs``
    label: str  # what the progress line prints
    action: Callable[[], None]  # does the work (writes the outputs atomically)
    outputs: tuple[Path, ...]  # files or folders the stage produces
    inputs: tuple[Path, ...]  # files whose contents the key hashes
    params: dict[str, Any]  # parameters the key hashes
    needs: tuple[str, ...] = ()  # stages whose keys enter this stage's key
    clears: tuple[Path, ...] = ()  # folders removed before the action unless it last started with this key


# ---- keys -------------------------------------------------------------------------------------------


def _digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        h.update(str(path).encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()


def _imports(tree: ast.AST) -> set[str]:
    """Names of the ``histgan`` modules a parsed source imports anywhere (also inside functions)."""
    from histgan import _EXPORTS  # the public names ``histgan.<name>`` imports on first use

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "histgan")
            if any(a.name == "histgan" for a in node.names):  # ``histgan.fit(...)`` may follow: its modules too
                found.update(f"histgan.{m}" for m in _EXPORTS.values())
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "histgan":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # kept only if it is a module
            if node.module == "histgan":
                found.update(f"histgan.{_EXPORTS[a.name]}" for a in node.names if a.name in _EXPORTS)
    return found


def _module_file(root: Path, name: str) -> Path:
    """The file of module ``name`` (``histgan.data.folders`` → ``histgan/data/folders.py``; a package →
    its ``__init__.py``)."""
    path = root.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _module_sources(root: Path, modules: set[str]) -> list[Path]:
    """The package files of ``modules`` and of everything they import, transitively (the ``__init__`` of
    every package on the way included: importing a submodule runs them)."""
    todo, seen = {"histgan", *modules}, set()
    while todo:
        name = todo.pop()
        if name in seen or not _module_file(root, name).is_file():
            continue
        seen.add(name)
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        todo |= (_imports(ast.parse(_module_file(root, name).read_text(encoding="utf-8"))) | parents) - seen
    return sorted(_module_file(root, n) for n in seen)


def _notebook_sources(root: Path, notebook: Path) -> list[Path]:
    """What a notebook runs besides its own cells: the package modules its code imports, transitively."""
    import jupytext

    modules: set[str] = set()
    for cell in jupytext.read(notebook).cells:
        if cell.cell_type == "code":
            try:
                modules |= _imports(ast.parse(cell.source))
            except SyntaxError:  # a cell with IPython magics: no imports of ours to find there
                continue
    return _module_sources(root, modules)


def _stamp_path(job: Job, stage: Stage) -> Path:
    return job.site / "_build" / ".stages" / f"{stage.name}.json"


def _key(stage: Stage, upstream: dict[str, str]) -> str:
    record = {"params": stage.params, "inputs": _digest(stage.inputs),
              "needs": {n: upstream.get(n, "") for n in stage.needs}}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


# ---- notebook stages --------------------------------------------------------------------------------


def _format(value: Any, folders: dict[str, str]) -> Any:
    return value.format(**folders) if isinstance(value, str) else value


def _folders(job: Job) -> dict[str, str]:
    return {"data": str(job.data), "runs": str(job.runs), "preset": job.preset}


def _notebook_stage(job: Job, spec: NotebookStage) -> Stage:
    params = spec.parameters(job)
    source = job.root / "notebooks" / f"{spec.name}.py"
    dest = job.executed / f"{spec.name}.ipynb"
    return Stage(name=spec.name, label=f"notebook {spec.name}" + (f" ({spec.title})" if spec.title else ""),
                 action=lambda: execute_notebook(source, dest, params, source.parent),
                 outputs=(dest,), inputs=(source, *_notebook_sources(job.root, source),
                                          *(job.root / r for r in spec.reads)), params=params,
                 needs=spec.needs, clears=tuple(Path(_format(c, _folders(job))) for c in spec.clears))


# ---- data and the book ------------------------------------------------------------------------------


def _data_stage(job: Job) -> Stage:
    from histgan.data.synthetic import PRESETS

    preset = job.preset
    spec = PRESETS[preset]
    params = {"preset": preset, "size": spec.size, "n_train": spec.n_train, "n_test": spec.n_test, "seed": 0}

    def action() -> None:
        from histgan.data.synthetic import write_dataset

        write_dataset(job.data, size=spec.size, n_train=spec.n_train, n_test=spec.n_test, seed=0, domain=DOMAIN)

    sources = _module_sources(job.root, {"histgan.data.synthetic"})
    return Stage(name="data", label=f"data: synthetic knees ({preset} preset, {DOMAIN} domain) into {job.data}",
                 action=action, outputs=(job.data / "meta.json",), inputs=tuple(sources),
                 params={**params, "domain": DOMAIN})


#: The Y domain of the main job's benchmark (``plain`` is the earlier one: ``data synth --domain plain``).
DOMAIN = "photo"
#: Masker training steps per data preset (the quick one only checks that the stage runs).
MASKER_STEPS = {"quick": 20, "cpu": 500, "paper": 1000}


def train_jobs(job: Job) -> list:
    """The train stage's jobs: the four variants of Table 2 and the reference masker."""
    from histgan.train.loop import variant_jobs

    return variant_jobs(job.runs / "variants", job.data, job.preset, masker_steps=MASKER_STEPS[job.preset])


def _train_stage(job: Job) -> Stage:
    from histgan.train.parallel import MARKER, run_parallel
    from histgan.progress import forward_progress

    jobs = train_jobs(job)

    def action() -> None:
        with forward_progress():  # the runs' progress bars reach this terminal
            run_parallel(jobs)

    params = {"jobs": [{"name": j.name, "target": j.target_name, "params": j.params} for j in jobs]}
    sources = _module_sources(job.root, {"histgan.train.loop", "histgan.train.masker", "histgan.train.parallel"})
    return Stage(name="train", label=f"train: {', '.join(j.name for j in jobs)} side by side", action=action,
                 outputs=tuple(j.run_dir / MARKER for j in jobs), inputs=tuple(sources), params=params,
                 needs=("data",), clears=tuple(j.run_dir for j in jobs))


def _book_sources(root: Path) -> list[Path]:
    pages = [p for p in (root / "book").rglob("*") if p.is_file() and "executed" not in p.parts
             and "offline" not in p.parts]
    return [root / "_config.yml", root / "_toc.yml", *pages]


def _copy_book_sources(job: Job) -> None:
    """For --quick: copy the book's pages and configuration into the scratch site."""
    for path in _book_sources(job.root) + [job.root / "package.json", job.root / "package-lock.json"]:
        if path.is_file():
            dest = job.site / path.relative_to(job.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    offline = job.root / "book" / "_static" / "offline"
    if offline.is_dir():  # reuse the npm assets the repository already fetched
        shutil.copytree(offline, job.site / "book" / "_static" / "offline", dirs_exist_ok=True)


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


def _book_stage(job: Job, notebook_names: Sequence[str]) -> Stage:
    return Stage(name="book", label=f"book: jupyter-book build -W into {job.html}",
                 action=lambda: build_book(job.site), outputs=(job.html / "index.html",),
                 inputs=tuple(_book_sources(job.site)), params={}, needs=tuple(notebook_names))


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
    notebook_stages = [_notebook_stage(job, spec) for spec in NOTEBOOKS]
    needed = {n for s in notebook_stages for n in s.needs}
    first = [make(job) for name, make in (("data", _data_stage), ("train", _train_stage))
             if name in needed or (name == "data" and "train" in needed)]
    return first + notebook_stages + [_book_stage(job, [s.name for s in notebook_stages])]


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


def run(job: Job, only: Sequence[str] = ()) -> Path:
    """Run (or skip, when up to date) every stage of :func:`stages`; returns the book's ``index.html``.

    Args:
        job: where to read and write (:func:`make_job`).
        only: stage names to consider; the others are neither run nor checked (default: all).
    """
    todo = stages(job)
    unknown = sorted(set(only) - {s.name for s in todo})
    if unknown:
        raise HistganError(f"unknown stage(s) {unknown}; the stages are {[s.name for s in todo]}")
    keys: dict[str, str] = {}
    start = time.monotonic()
    for i, stage in enumerate(todo, 1):
        key = _key(stage, keys)
        keys[stage.name] = key
        if only and stage.name not in only:
            continue
        stamp = _stamp_path(job, stage)
        current = stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == key
        if current and not job.force and all(p.exists() for p in stage.outputs):
            print(f"[{i}/{len(todo)}] {stage.label}: up to date, skipped", flush=True)
            continue
        print(f"[{i}/{len(todo)}] {stage.label} ...", flush=True)
        t0 = time.monotonic()
        _clear_if_changed(stamp.with_suffix(".started"), key, stage.clears)
        stage.action()
        atomic_write_json(stamp, {"key": key, "params": stage.params, "seconds": round(time.monotonic() - t0, 1)})
        print(f"[{i}/{len(todo)}] {stage.label}: done in {time.monotonic() - t0:.0f} s", flush=True)
    index = job.html / "index.html"
    print(f"total {time.monotonic() - start:.0f} s. The book: {index}  (open file://{index})", flush=True)
    summary = job.runs / "variants" / "report" / "summary.json"
    if summary.is_file():
        print(headline(summary), flush=True)
    return index


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
                        help="data and training size: cpu (default, ≤ 40 min on 2 cores) or paper (GPU)")
    parser.add_argument("--force", action="store_true", help="redo every stage even if up to date")
    parser.add_argument("--only", nargs="+", default=(), metavar="STAGE", help="run only these stages")
    parser.add_argument("--refresh-notebooks", nargs="*", metavar="NAME",
                        help="re-execute notebooks/*.ipynb in place with their quick defaults (nbval references)")
    args = parser.parse_args(argv)
    try:
        if args.refresh_notebooks is not None:
            refresh_notebooks(ROOT, args.refresh_notebooks)
            return 0
        run(make_job(args.quick, args.workdir, args.force, preset=args.preset), args.only)
        return 0
    except KeyboardInterrupt:
        print("histgan.book.pipeline: interrupted", file=sys.stderr)
        return 130
    except (HistganError, ValueError, FileNotFoundError) as exc:
        print(f"histgan.book.pipeline: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
