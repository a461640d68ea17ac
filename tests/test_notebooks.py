"""The book's notebooks: paired files in step, nbval against the reference outputs, papermill runs,
the book built from them with warnings as errors, and the main job's bookkeeping (histgan.book.pipeline).

``make test`` (plain ``pytest``) runs nbval through :func:`test_nbval_reference_outputs`: a pytest
subprocess with ``--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg`` on
each committed ``notebooks/*.ipynb``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from histgan.book import keys, pipeline as book
from histgan.book.job import Job, Stage
from histgan.book.stages import NOTEBOOKS, train_jobs
from histgan.book.notebooks import strip_notebook
from histgan.errors import HistganError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("*.py"))
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


def _ids(paths):
    return [p.stem for p in paths]


def _cells(path: Path) -> list[tuple[str, str]]:
    import jupytext

    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_is_paired_and_listed():
    assert SOURCES, "no notebooks/*.py found"
    listed = {spec.name for spec in NOTEBOOKS}
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for source in SOURCES:
        assert source.with_suffix(".ipynb").is_file(), f"{source.name} has no paired .ipynb (jupytext --to ipynb)"
        assert source.stem in listed, f"{source.stem} is not a stage in histgan.book.stages.NOTEBOOKS"
        assert f"book/executed/{source.stem}" in toc, f"{source.stem} is not in _toc.yml"


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_py_and_ipynb_have_not_drifted(source):
    assert source.with_suffix(".ipynb").is_file(), f"{source.name} has no paired .ipynb"
    py, ipynb = _cells(source), _cells(source.with_suffix(".ipynb"))
    assert len(py) == len(ipynb), (f"{source.name}: {len(py)} cells, its .ipynb {len(ipynb)}; run "
                                   f"python -m histgan.book --refresh-notebooks {source.stem}")
    for i, (a, b) in enumerate(zip(py, ipynb)):
        assert a == b, f"{source.name}: cell {i} differs from the .ipynb; refresh it (see above)"


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_notebook_defines_no_code_and_has_parameters(source):
    import jupytext

    nb = jupytext.read(source)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "the .py header needs the kernelspec"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defined, f"{source.name} defines {defined}: code lives in the package, notebooks call it"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title first"


def test_strip_notebook_removes_run_records():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 1.0}
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata.update({"papermill": {"duration": 0.1}, "execution": {"iopub.status.busy": "2026"},
                          "tags": ["parameters"]})
    nb.cells.append(cell)
    untagged = nbformat.v4.new_code_cell("2")
    untagged.metadata["tags"] = []
    nb.cells.append(untagged)
    out = strip_notebook(nb)
    assert "papermill" not in out.metadata
    assert dict(out.cells[0].metadata) == {"tags": ["parameters"]}
    assert dict(out.cells[1].metadata) == {}


#: Environments nbval re-executes the notebooks in. Stored outputs must not depend on the machine: oneDNN
#: picks its float32 kernels by instruction set and threads split sums differently, so a few training
#: steps give other digits on another CPU. "other-cpu" imitates such a machine here (AVX2 kernels only,
#: one thread): an output that differs under it is machine-dependent and must be asserted on (ranges,
#: orderings) under an ``nbval-ignore-output`` tag instead of stored (the book's contributor notes).
NBVAL_ENVIRONMENTS = {"this-cpu": {}, "other-cpu": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}}


@pytest.mark.slow
@pytest.mark.parametrize("environment", NBVAL_ENVIRONMENTS)
@pytest.mark.parametrize("notebook", [s.with_suffix(".ipynb") for s in SOURCES], ids=_ids(SOURCES))
def test_nbval_reference_outputs(notebook, environment):
    """Re-execute the committed notebook and compare every output with its reference (nbval)."""
    import os

    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--nbval",
           "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "600",
           str(notebook)]
    env = {**os.environ, **NBVAL_ENVIRONMENTS[environment]}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, f"nbval failed for {notebook.name}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The whole pipeline with --quick in a scratch folder, through the real command
    (``python -m histgan.book --quick``): papermill with injected parameters, then jupyter-book with -W.
    Returns the job and what the command printed (stdout and stderr, interleaved as a terminal shows
    them). Skips when the book's browser assets cannot be fetched (no npm)."""
    import shutil

    if shutil.which("npm") is None and not (ROOT / "book" / "_static" / "offline").is_dir():
        pytest.skip("npm not found: the book build fetches MathJax and the widget manager with npm ci")
    workdir = tmp_path_factory.mktemp("quick-book")
    done = subprocess.run([sys.executable, "-m", "histgan.book.pipeline", "--quick", "--workdir", str(workdir)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-6000:]
    return book.make_job(quick=True, workdir=workdir), done.stdout


@pytest.fixture(scope="module")
def quick_book(quick_run):
    job, _ = quick_run
    return job, job.html / "index.html"


@pytest.mark.slow
def test_main_job_streams_training_progress_and_no_kernel_noise(quick_run):
    """While the train stage runs the four variants side by side, lines with a step count and a rate reach
    the terminal; the kernels' transport warning and the notebooks' own printed output do not."""
    import re

    _, out = quick_run
    lines = out.replace("\r", "\n").splitlines()
    names = [spec.name for spec in NOTEBOOKS]
    first = next(i for i, line in enumerate(lines) if re.match(r"\[\d+/\d+\] train: .* \.\.\.$", line))
    last = next(i for i, line in enumerate(lines) if re.match(r"\[\d+/\d+\] train: .*: done in", line))
    bar = re.compile(r"histgan_bi.*\b(\d+)/\1 \[.*\d+\.\d+(\w+/s|s/\w+)")  # e.g. 4/4 [00:01<00:00, 3.1step/s]
    assert any(bar.search(line) for line in lines[first:last]), "\n".join(lines[first:last + 1])
    assert "without encryption" not in out, "the kernel's transport warning reached the terminal"
    assert "test set:" not in out, "a notebook's printed output reached the terminal (it belongs in the book)"
    assert len(names) == len(SOURCES) and all(any(n in line for line in lines) for n in names)


@pytest.mark.slow
def test_papermill_runs_every_notebook_with_injected_parameters(quick_book):
    import nbformat

    job, _ = quick_book
    for spec in NOTEBOOKS:
        nb = nbformat.read(job.executed / f"{spec.name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert not errors, f"{spec.name}: {errors[0].ename}: {errors[0].evalue}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        if spec.quick:
            assert len(injected) == 1, f"{spec.name}: papermill injected no parameters"
            for key, value in spec.parameters(job).items():
                assert re.search(rf"^{key} = {re.escape(json.dumps(value) if isinstance(value, str) else repr(value))}$",
                                 injected[0].source, re.M), (key, value, injected[0].source)
        assert "papermill" not in nb.metadata and all("execution" not in c.metadata for c in nb.cells)


@pytest.mark.slow
def test_book_builds_from_executed_notebooks_with_warnings_as_errors(quick_book):
    job, index = quick_book
    assert index == job.html / "index.html" and index.is_file()
    for spec in NOTEBOOKS:
        page = job.html / "book" / "executed" / f"{spec.name}.html"
        assert page.is_file(), f"{page} was not built"
    html = (job.html / "book" / "executed" / "01_histogram.html").read_text(encoding="utf-8")
    assert r"\tag{5}" in html and 'class="eqno"' not in html, "equations carry the paper's numbers, not a counter"
    assert "**Source**" not in html and "histgan.histogram.soft_histogram" in html, "source listings render"
    notation = (job.html / "book" / "notation.html").read_text(encoding="utf-8")
    assert "soft_histogram" in notation and "<table" in notation, "the paper-to-code table renders"


@pytest.mark.slow
def test_second_run_skips_every_stage_whose_key_is_unchanged(quick_book, capsys):
    """A second run redoes nothing (in CI). In a working tree being edited meanwhile, a stage may rerun,
    but only because its key changed: a stage with an unchanged key is always skipped."""
    job, _ = quick_book
    stamps = job.site / "_build" / ".stages"
    before = {p.stem: json.loads(p.read_text())["key"] for p in stamps.glob("*.json")}
    capsys.readouterr()
    book.run(job)
    lines = capsys.readouterr().out.splitlines()
    after = {p.stem: json.loads(p.read_text())["key"] for p in stamps.glob("*.json")}
    for i, stage in enumerate(book.stages(job), 1):
        skipped = any(line.startswith(f"[{i}/") and "up to date, skipped" in line for line in lines)
        assert skipped == (before[stage.name] == after[stage.name]), (stage.name, lines)


def test_stage_key_changes_with_parameters_and_inputs(tmp_path):
    source = tmp_path / "a.txt"
    source.write_text("one")
    stage = Stage(name="s", label="s", action=lambda: None, outputs=(), inputs=(source,), params={"x": 1})
    key = keys.stage_key(stage, {})
    assert key == keys.stage_key(stage, {})
    assert key != keys.stage_key(Stage(**{**stage.__dict__, "params": {"x": 2}}), {})
    source.write_text("two")
    assert key != keys.stage_key(stage, {})


def test_unknown_stage_and_missing_notebook_are_errors_for_people(tmp_path, capsys):
    assert book.main(["--only", "no_such_stage", "--quick", "--workdir", str(tmp_path)]) == 2
    assert "unknown stage(s) ['no_such_stage']" in capsys.readouterr().err
    assert book.main(["--refresh-notebooks", "99_missing"]) == 2
    assert "99_missing.py does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        book.main(["--jobs", "0", "--quick", "--workdir", str(tmp_path)])
    assert exit_.value.code == 2 and "--jobs must be an integer >= 1, got 0" in capsys.readouterr().err


def test_main_job_parameters_are_json_and_known_to_the_notebook():
    import jupytext

    for spec in NOTEBOOKS:
        json.dumps(spec.main), json.dumps(spec.quick)
        nb = jupytext.read(NOTEBOOK_DIR / f"{spec.name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = {t.id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign) for t in n.targets}
        unknown = (set(spec.main) | set(spec.quick)) - names
        assert not unknown, f"{spec.name}: parameters {sorted(unknown)} are not in its parameters cell"


#: The paper's eqs (1)–(12), each recognised by a piece of its left-hand side (Kobayashi and Wada).
PAPER_EQUATIONS = {"1": "f_I(g)", "2": "K(z)", "3": "P_I(k)", "4": r"\Pi_k(z)", "5": "h = ", "6": r"L_\text{hist} =",
                   "7": "L = ", "8": r"L_\text{gan} =", "9": r"L_\text{adv}(G, D_Y, X, Y) =", "10": r"L_\text{cycle} =",
                   "11": r"L_\text{idt} =", "12": r"\Delta E ="}


def _markdown(path: Path) -> str:
    import jupytext

    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    return "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "markdown")


def test_equation_numbers_are_the_papers_and_every_citation_resolves():
    """Numbered display equations carry explicit tags — the paper's numbers for its equations, M1… for the
    book's own — never the book's running counter; every "eq (n)" a page cites is displayed somewhere."""
    import re

    pages = [*SOURCES, *sorted((ROOT / "book").glob("*.md"))]
    shown: dict[str, tuple[str, str]] = {}
    for page in pages:
        text = _markdown(page)
        assert "{eq}`" not in text and not re.search(r"^\$\$ \(", text, re.M), f"{page.name}: a numbered label"
        for block in re.findall(r"\$\$(.*?)\$\$", text, re.S):
            tags = re.findall(r"\\tag\{([^}]+)\}", block)
            assert len(tags) <= 1, f"{page.name}: an equation with two tags: {block.strip()[:60]}"
            for tag in tags:
                assert tag not in shown, f"eq ({tag}) is displayed twice: {shown[tag][0]} and {page.name}"
                shown[tag] = (page.name, block)
    for number, lhs in PAPER_EQUATIONS.items():
        assert number in shown, f"the paper's eq ({number}) is displayed nowhere"
        assert lhs in shown[number][1], f"eq ({number}) is not the paper's {lhs!r}: {shown[number][1].strip()[:80]}"
    for page in pages:
        for cited in re.findall(r"\beqs? \(([^)]+)\)(?:\s*(?:–|and)\s*\(([^)]+)\))?", _markdown(page)):
            for number in filter(None, cited):
                assert number in shown, f"{page.name} cites eq ({number}), which no page displays"


def test_stage_keys_cover_what_each_stage_runs_and_nothing_else(tmp_path):
    """A notebook stage hashes its notebook and the package modules it imports (transitively), so editing
    the command-line interface or the book's slider code re-runs no notebook."""
    job = book.make_job(quick=False, root=ROOT)
    by_name = {s.name: {p.name for p in s.inputs} for s in book.stages(job) if s.name != "book"}
    assert not [(s.name, p) for s in book.stages(job) if s.name != "book" for p in s.inputs if "cli" in p.parts]
    for name, inputs in by_name.items():
        assert "offline_assets.py" not in inputs, (name, sorted(inputs))
        assert "static_slider.py" not in inputs or name == "01_histogram", name
    assert {"histogram.py", "__init__.py", "static_slider.py"} <= by_name["01_histogram"]
    assert {"render.py", "synthetic.py"} <= by_name["data"]
    assert {"evaluate.py", "baselines.py"} <= by_name["04_evaluation"] and "evaluate.py" not in by_name["02_model"]
    # a module imported only inside a function of an imported module still counts
    pkg = tmp_path / "histgan"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from histgan.b import g\n    return g\n")
    (pkg / "b.py").write_text("g = 1\n")
    (pkg / "c.py").write_text("")
    assert [p.name for p in keys.module_sources(tmp_path, {"histgan.a"})] == ["__init__.py", "a.py", "b.py"]


def test_a_cell_using_histgans_lazy_names_depends_on_their_modules():
    """``import histgan`` then ``histgan.load_run(...)`` runs histgan.inference, which the package imports
    only on first use: the key must still hash it. Training's own key does not (it never imports it)."""
    import ast

    assert "histgan.inference" in keys.histgan_imports(ast.parse("import histgan\nhistgan.load_run('r')"))
    assert "histgan.inference" in keys.histgan_imports(ast.parse("from histgan import translate"))
    assert "histgan.inference" not in keys.histgan_imports(ast.parse("from histgan import config"))
    train_key = {p.relative_to(ROOT).as_posix() for p in keys.module_sources(ROOT, {"histgan.train.loop"})}
    assert "histgan/train/loop.py" in train_key and "histgan/train/__init__.py" in train_key
    assert "histgan/inference.py" not in train_key and not any(p.startswith("histgan/cli/") for p in train_key)
    assert not any(p.startswith("histgan/book/") for p in train_key), "training never runs the book's machinery"


def test_headline_states_each_variants_delta_e_and_the_ratio_to_cyclegan(tmp_path):
    summary = tmp_path / "summary.json"
    models = {"cyclegan": {"delta_e_mean": 30.0, "grade_of_mean": "beyond D", "n_pairs": 256},
              "histgan_bi": {"delta_e_mean": 4.0, "grade_of_mean": "B", "n_pairs": 256},
              "baseline_reinhard": {"delta_e_mean": 0.5, "grade_of_mean": "AA", "n_pairs": 256}}
    summary.write_text(json.dumps({"models": models}), encoding="utf-8")
    lines = book.headline(summary).splitlines()
    assert "256 pairs" in lines[0]
    bi = next(line for line in lines if line.strip().startswith("histgan_bi"))
    assert "4.00" in bi and " B " in bi and "7.5×" in bi and "4.6" in bi  # 30 / 4; the paper's 4.6
    cg = next(line for line in lines if line.strip().startswith("cyclegan"))
    assert "1.0×" in cg and "14.1" in cg
    assert not any("baseline" in line for line in lines), "the headline lists the paper's variants only"


def test_a_stage_whose_key_changed_starts_its_runs_afresh_and_an_interrupted_one_resumes(tmp_path):
    """The train stage's folders survive an interruption (same key: the runs resume) but not a change of
    its inputs (new key: runs of the old code are removed, never resumed)."""
    started, runs = tmp_path / ".stages" / "train.started", tmp_path / "runs"
    (runs / "variant=a" / "checkpoints").mkdir(parents=True)
    (runs / "variant=a" / "checkpoints" / "latest.pt").write_bytes(b"step 4")
    book._clear_if_changed(started, "key-1", [runs / "variant=a"])  # first start: nothing there to keep
    assert not (runs / "variant=a").exists() and started.read_text().strip() == "key-1"
    (runs / "variant=a").mkdir()
    (runs / "variant=a" / "half.pt").write_bytes(b"step 2")
    book._clear_if_changed(started, "key-1", [runs / "variant=a"])  # restarted after an interruption
    assert (runs / "variant=a" / "half.pt").read_bytes() == b"step 2"
    book._clear_if_changed(started, "key-2", [runs / "variant=a"])  # the code changed
    assert not (runs / "variant=a").exists() and started.read_text().strip() == "key-2"


def test_main_job_trains_before_the_pages_that_show_the_runs():
    job = book.make_job(quick=False, root=ROOT)
    order = [s.name for s in book.stages(job)]
    train = next(s for s in book.stages(job) if s.name == "train")
    assert order[:2] == ["data", "train"] and order[-1] == "book"
    assert {"train", "data"} <= set(next(s for s in book.stages(job) if s.name == "04_evaluation").needs)
    assert set(train.clears) == {j.run_dir for j in train_jobs(job)} and len(train.clears) == 5
    inputs = {p.relative_to(ROOT).as_posix() for p in train.inputs}
    assert {"histgan/train/variants.py", "histgan/train/loop.py", "histgan/train/step.py", "histgan/train/masker.py",
            "histgan/train/parallel.py"} <= inputs
    assert "histgan/eval/evaluate.py" not in inputs, "editing the evaluation must not retrain"


#: Names from our own working files that a reader of the book cannot look up.
INTERNAL_NAMES = re.compile(r"\bseed 00\d\b|METHOD\.md|\(issue[: ]|\bissue \d+\b", re.I)


def test_shipped_text_cites_papers_not_our_working_files():
    """Notebooks (their sources and stored outputs, which include package listings), book pages, the README
    and the package's docstrings name papers by authors and title, never our internal files or issues."""
    paths = [*NOTEBOOK_DIR.glob("*.py"), *NOTEBOOK_DIR.glob("*.ipynb"), *(ROOT / "book").glob("*.md"),
             ROOT / "README.md", *(ROOT / "histgan").rglob("*.py")]
    found = [f"{p.relative_to(ROOT)}:{i}: {m.group(0)}" for p in paths
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             for m in [INTERNAL_NAMES.search(line)] if m]
    assert not found, "\n".join(found)


def test_stage_parameters_fill_in_the_jobs_folders(tmp_path):
    """No notebook ever sees a "{data}" or "{runs}" template: the quick and main parameters get the job's folders."""
    for job in (book.make_job(quick=False, root=ROOT), Job(root=ROOT, site=tmp_path, quick=True, preset="quick")):
        for spec in NOTEBOOKS:
            params = spec.parameters(job)
            assert set(params) == set(spec.quick if job.quick else spec.main)
            text = json.dumps(params)
            assert "{data}" not in text and "{runs}" not in text and "{preset}" not in text, (spec.name, text)
    quick = Job(root=ROOT, site=tmp_path, quick=True, preset="quick")
    evaluation = next(s for s in NOTEBOOKS if s.name == "04_evaluation").parameters(quick)
    assert evaluation["runs"] == str(tmp_path / "runs" / "quick" / "variants")


def _pool_stages(tmp_path: Path, calls: list[str]) -> list[Stage]:
    """A train stage of two runs (one of them lasts 8 s), a notebook that needs the runs, one that reads
    only the data, the book."""
    from histgan.train import parallel

    def job(name: str, seconds: float = 0.0, **kw) -> parallel.Job:
        return parallel.Job(name, tmp_path / "jobs" / name, "subprocess:run",
                            {"args": [sys.executable, "-c", f"import time; time.sleep({seconds})"], "check": True}, **kw)

    def stage(name: str, jobs=(), **kw) -> Stage:
        return Stage(name=name, label=f"stage {name}", action=lambda: calls.append(name), outputs=(), inputs=(),
                     params={}, jobs=tuple(jobs), **kw)

    return [stage("train", [job("a", 8.0), job("b")], needs=("data",), resumes=True),
            stage("nb_runs", [job("nb_runs")], needs=("train",)),  # after a and b: from its needs
            stage("nb_data", [job("nb_data")]),
            stage("book", needs=("nb_runs", "nb_data"))]


def test_the_pool_starts_a_notebook_beside_the_runs_unless_it_needs_them(tmp_path, monkeypatch, capsys):
    """With two workers the stages with jobs share one pool: the notebook that reads only the data runs
    while the train stage's long run does, the one that shows the runs waits for both runs; each stage
    is recorded when its last job ends, the book runs in this process after the pool, and a second run
    skips every stage."""
    calls: list[str] = []
    monkeypatch.setattr(book, "stages", lambda job: _pool_stages(tmp_path, calls))
    job = Job(root=ROOT, site=tmp_path, quick=True, preset="quick")
    book.run(job, workers=2)
    lines = capsys.readouterr().out.splitlines()
    assert calls == ["book"], "the pooled stages ran as jobs, not as in-process actions"

    def at(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    train_done = at("[1/4] stage train: done in")
    assert at("[1/4] stage train ...") < at("[3/4] stage nb_data ...") < at("[3/4] stage nb_data: done") < train_done
    assert train_done < at("[2/4] stage nb_runs ..."), lines
    for name in ("a", "b", "nb_runs", "nb_data"):
        assert (tmp_path / "jobs" / name / "sweep_done.json").is_file()
    stamps = {p.stem for p in (tmp_path / "_build" / ".stages").glob("*.json")}
    assert stamps == {"train", "nb_runs", "nb_data", "book"}
    book.run(job, workers=2)
    again = capsys.readouterr().out
    assert again.count("up to date, skipped") == 4 and calls == ["book"], again


def test_one_worker_runs_the_stages_one_after_another_in_this_process(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(book, "stages", lambda job: _pool_stages(tmp_path, calls))
    book.run(Job(root=ROOT, site=tmp_path, quick=True, preset="quick"), workers=1)
    assert calls == ["train", "nb_runs", "nb_data", "book"]


def test_a_failing_job_in_the_pool_fails_the_job_with_the_end_of_its_log(tmp_path, monkeypatch):
    """The notebook beside it still finishes; the one after the failed run is not run; the book is not
    built; the error shows the failed job's log (its traceback)."""
    from histgan.train import parallel

    calls: list[str] = []
    stages = _pool_stages(tmp_path, calls)
    bad = parallel.Job("a", tmp_path / "jobs" / "a", "json:loads", {"s": "{not json"})
    stages[0] = Stage(name="train", label="stage train", action=lambda: None, outputs=(), inputs=(), params={},
                      jobs=(bad, stages[0].jobs[1]), resumes=True)
    monkeypatch.setattr(book, "stages", lambda job: stages)
    with pytest.raises(HistganError) as err:
        book.run(Job(root=ROOT, site=tmp_path, quick=True, preset="quick"), workers=2)
    message = str(err.value)
    assert "a (exit 1" in message and "nb_runs (not run: it comes after a" in message
    assert "JSONDecodeError" in message and "job.log ---" in message, message
    assert (tmp_path / "jobs" / "nb_data" / "sweep_done.json").is_file() and calls == []


def test_the_pool_is_the_default_only_with_more_workers_than_a_stage_has_jobs(tmp_path):
    stages = _pool_stages(tmp_path, [])  # the largest stage has two jobs
    assert book.pool_workers(stages, cpus=2, gpus=0) == 1, "2 cores, two runs: one stage after another"
    assert book.pool_workers(stages, cpus=3, gpus=0) == 3
    assert book.pool_workers(stages, cpus=16, gpus=2) == 1, "one worker per GPU"
    assert book.pool_workers(stages, cpus=16, gpus=4) == 4
    assert book.pool_workers([], cpus=8, gpus=0) == 1
