"""Progress bars that reach the person waiting, wherever the code runs.

Interactive use gets tqdm's usual bar (a widget in JupyterLab, a text bar in a terminal). When the
book's main job executes a notebook, the kernel's output is the notebook's, not the terminal's: the
job then sets :data:`PROGRESS_ENV` to a file, every bar of the package writes plain text lines there
(steps done, rate, time left, the latest losses) and nothing into the notebook, and the job copies the
file's new lines to its terminal while the notebook runs (:func:`forward_progress`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["PROGRESS_ENV", "progress_bar", "forward_progress"]

#: Environment variable naming the file progress bars write to instead of the notebook or terminal.
PROGRESS_ENV = "HISTGAN_PROGRESS_FILE"
#: Seconds between two lines of one bar in the progress file (the terminal gets every line).
FILE_INTERVAL = 10.0


def progress_bar(iterable: Any = None, **kwargs: Any):
    """A tqdm bar: ``tqdm.auto`` normally, plain lines into the file named by :data:`PROGRESS_ENV` when set.

    Args:
        iterable: what to iterate over, as for ``tqdm``.
        **kwargs: passed to ``tqdm`` (``total``, ``desc``, ``disable``, ``initial``, ``unit``, ...).
    """
    target = os.environ.get(PROGRESS_ENV)
    if not target or kwargs.get("disable"):
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    from tqdm import tqdm

    stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed with the bar
    kwargs.update(file=stream, ascii=True, ncols=110, mininterval=FILE_INTERVAL, dynamic_ncols=False)
    bar = tqdm(iterable, **kwargs)
    close = bar.close

    def close_and_release() -> None:  # idempotent, as tqdm's close: __del__ calls it again after an explicit close
        close()
        if not stream.closed:
            stream.write("\n")
            stream.close()

    bar.close = close_and_release
    return bar


_UPDATE = re.compile(r"[\r\n]+")


def _copy_lines(path: Path, out: IO[str], stop: threading.Event, prefix: str, whole_lines: bool = False) -> None:
    """Copy each complete bar update (tqdm ends them with CR or LF) from ``path`` to ``out`` as a line.

    Another bar may own the current line of ``out`` (papermill's cell bar, redrawn with CR): on a terminal
    a copied line first clears it, in a log file it starts on a line of its own. With ``whole_lines``
    (no such bar runs) each copied line ends with its newline in a log file too, so that lines written
    to ``out`` by others in between start on their own.
    """
    head, tail = ("\r\x1b[K", "\n") if out.isatty() else ("", "\n") if whole_lines else ("\n", "")
    pending, wrote = "", False
    with open(path, encoding="utf-8", errors="replace") as src:
        while True:
            chunk = src.read()
            if chunk:
                *updates, pending = _UPDATE.split(pending + chunk)
                for update in updates:
                    if update.strip():
                        out.write(f"{head}{prefix}{update.strip()}{tail}")
                        wrote = True
                out.flush()
            elif stop.is_set():
                break
            else:
                stop.wait(0.5)
    if pending.strip():
        out.write(f"{head}{prefix}{pending.strip()}{tail}")
        wrote = True
    if wrote and not tail:
        out.write("\n")
    out.flush()


@contextlib.contextmanager
def forward_progress(out: IO[str] | None = None, prefix: str = "    ", whole_lines: bool = False) -> Iterator[Path]:
    """Within the block, progress bars of processes started from here (e.g. a notebook's kernel) write
    to a temporary file whose lines are copied to ``out`` (default: standard error) as they come
    (``whole_lines``: see :func:`_copy_lines`).

    Sets :data:`PROGRESS_ENV` for the block (child processes inherit it) and restores it afterwards.

    Yields:
        the progress file.
    """
    out = out if out is not None else sys.stderr
    fd, name = tempfile.mkstemp(prefix="histgan-progress-", suffix=".log")
    os.close(fd)
    path = Path(name)
    stop = threading.Event()
    thread = threading.Thread(target=_copy_lines, args=(path, out, stop, prefix, whole_lines), daemon=True)
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)
    thread.start()
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)
