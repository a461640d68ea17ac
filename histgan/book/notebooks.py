"""Running the book's notebooks: py:percent source → papermill execution → stripped ``.ipynb``.

Used by the main job (:mod:`histgan.book.pipeline`) and to refresh the committed reference outputs that nbval
compares against (``python -m histgan.book --refresh-notebooks``).
"""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from histgan.errors import HistganError
from histgan.io import atomic_path
from histgan.progress import forward_progress

__all__ = ["strip_notebook", "execute_notebook", "refresh_notebooks", "WIDGET_CELL_TIMEOUT"]

#: Seconds nbclient waits for the reply of a cell that creates ipywidgets before it polls again.
WIDGET_CELL_TIMEOUT = 120


def _cell_timeout(cell: Any) -> int | None:
    """nbclient's timeout for one cell: :data:`WIDGET_CELL_TIMEOUT` for widget cells, none otherwise.

    nbclient waits for a cell's reply with one poll of the kernel's shell socket. After a cell that
    opens widget comms, that wait sometimes never wakes although the kernel has replied and is idle
    (measured here: 1 run in 13 of a small widget notebook; jupyter/nbclient#312). pyzmq's poller
    checks the socket again when a timeout expires, so with a finite timeout such a cell costs at most
    that long instead of hanging the job. Widget cells in the book run in seconds.
    """
    return WIDGET_CELL_TIMEOUT if "widgets." in cell.source else None


def strip_notebook(nb: Any) -> Any:
    """Remove what changes on every execution (timestamps, durations, papermill's run record).

    Args:
        nb: an ``nbformat.NotebookNode``; modified in place.

    Returns:
        the same notebook.
    """
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill adds empty tag lists: noise in the diff
            cell.metadata.pop("tags")
    return nb


def _quiet_kernels() -> Any:
    """Configuration for the kernels papermill starts: local IPC sockets instead of TCP.

    Over TCP every ipykernel ≥ 7 warns on its standard error, which is the job's terminal, that its
    traffic is unencrypted; IPC sockets are files only this user can reach, so there is nothing to warn
    about (and nothing listens on a port).
    """
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    return config


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def execute_notebook(source: Path, dest: Path, parameters: dict[str, Any] | None, cwd: Path,
                     progress: bool = True) -> None:
    """Convert ``source`` (py:percent) with jupytext, execute it with papermill, strip it, write ``dest``.

    The notebook is executed into ``dest`` with the suffix ``.running.ipynb`` first, so a failed run
    leaves the partly executed notebook there to read; ``dest`` itself is replaced only on success.

    Args:
        source: ``notebooks/NN_name.py`` (or an ``.ipynb``).
        dest: the executed notebook to write.
        parameters: values injected after the ``parameters`` cell; ``None`` or ``{}`` injects nothing.
        cwd: working directory of the kernel.
        progress: show papermill's cell progress bar and, while a cell runs, the package's own progress
            bars (training, evaluation, data; :func:`histgan.progress.forward_progress`) on standard
            error. What the notebook prints stays in the notebook.

    Raises:
        HistganError: when a cell fails; the cell's full traceback is printed to standard error first.
    """
    import jupytext
    import nbformat
    import papermill

    nb = jupytext.read(source)
    running = dest.with_name(dest.stem + ".running.ipynb")
    running.parent.mkdir(parents=True, exist_ok=True)
    forward = forward_progress() if progress else contextlib.nullcontext()
    try:
        with forward:
            executed = papermill.execute_notebook(
                nb, str(running), parameters=parameters or None, cwd=str(cwd), kernel_name="python3",
                progress_bar=progress, timeout_func=_cell_timeout, config=_quiet_kernels())
    except papermill.PapermillExecutionError as exc:
        trace = _ANSI.sub("", "\n".join(exc.traceback or []))
        print(f"--- traceback of {source.name}, cell {exc.exec_count} ---\n{trace}", file=sys.stderr, flush=True)
        raise HistganError(f"notebook {source.name} failed in cell {exc.exec_count}: {exc.ename}: "
                           f"{exc.evalue}; the partly executed notebook is {running}") from None
    with atomic_path(dest) as tmp:
        nbformat.write(strip_notebook(executed), str(tmp))
    running.unlink(missing_ok=True)


#: Errors of Jupyter kernels started at the same moment by two processes (their ZeroMQ ports
#: collide, so a client reads the other kernel's signed messages); the notebook is run again.
_KERNEL_START_RACES = ("Invalid Signature", "Kernel died before replying to kernel_info")


def run_notebook_job(notebook: str, run_dir: str, parameters: dict[str, Any]) -> None:
    """A sweep point as a job of :func:`histgan.train.parallel.run_parallel`: execute ``notebook`` with
    ``parameters`` into ``run_dir/<stem>.ipynb`` (run again, up to three times, when two kernels started
    at the same moment collided)."""
    nb = Path(notebook)
    for attempt in range(3):
        try:
            execute_notebook(nb, Path(run_dir) / f"{nb.stem}.ipynb", dict(parameters), nb.parent, progress=False)
            return
        except Exception as exc:  # noqa: BLE001  (re-raised unless it is the kernel-start race)
            if attempt == 2 or not any(s in str(exc) for s in _KERNEL_START_RACES):
                raise
            time.sleep(1.0 + 3.0 * random.random())


def refresh_notebooks(root: Path, names: Sequence[str] = ()) -> list[Path]:
    """Re-execute ``notebooks/*.ipynb`` in place with their own defaults (the nbval reference outputs).

    Each ``.py`` is the source: ``jupytext --to ipynb --update`` carries its cells into the paired
    ``.ipynb`` (keeping cell ids), which papermill then executes without injecting parameters.

    Args:
        root: the repository root.
        names: notebook stems to refresh; empty means every ``notebooks/*.py``.

    Returns:
        the notebooks written.
    """
    sources = [root / "notebooks" / f"{n}.py" for n in names] or sorted((root / "notebooks").glob("*.py"))
    for source in sources:
        if not source.is_file():
            raise HistganError(f"{source} does not exist; names are notebook stems such as 01_histogram")
        print(f"refreshing {source.with_suffix('.ipynb')} ...", flush=True)
        subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--update", str(source)],
                       check=True)
        execute_notebook(source.with_suffix(".ipynb"), source.with_suffix(".ipynb"), None, source.parent)
    return [s.with_suffix(".ipynb") for s in sources]
