"""Atomic file writing: nothing half-written is ever left where a reader would pick it up.

Every writer in the package goes through :func:`atomic_path`: it yields a temporary path in the
destination's folder, and only when the block finishes without an exception is that file moved
over the destination with :func:`os.replace` (atomic on POSIX and Windows within one file system).
On failure the temporary file is removed and the previous destination, if any, stays intact.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_save_png", "save_figure",
           "skip_iri_syntax_checker"]


def _default_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds.

    Args:
        path: the destination file. Its parent folder is created if missing.
        suffix: suffix of the temporary file (default: the destination's), for writers that pick
            a format from the file name (Pillow, ``torch.save`` does not care).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(path.suffix if suffix is None else suffix) + ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_file_mode())  # mkstemp makes 0600; give what open() would
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an ``(H, W)`` or ``(H, W, 3|4)`` uint8 array as PNG atomically."""
    from PIL import Image

    if array.dtype != np.uint8:
        raise ValueError(f"array must be uint8 for PNG, got {array.dtype}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib ``Figure`` as PNG at ``path`` atomically; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def skip_iri_syntax_checker() -> None:
    """In a process of ours that will run notebooks: keep ``jsonschema`` from loading ``rfc3987_syntax``.

    nbformat (imported by papermill, nbclient and jupytext) imports ``jsonschema``, whose format
    checkers import ``rfc3987_syntax`` when it is installed (Jupyter's ``jsonschema[format-nongpl]``
    pulls it in); that module builds about 35 Earley parsers at import, 1.3 s of every such process on
    the machine of BENCHMARKS.md §22 — more than a quick sweep point's 12 training steps. Only the
    ``iri`` and ``iri-reference`` formats use it, and no notebook schema has them. Marking the module
    absent makes ``jsonschema`` leave those two formats unchecked, as it does wherever the module is not
    installed. Called by the entry points only (``python -m histgan``, ``python -m histgan.book``, a
    parallel job's process), before anything imports ``jsonschema``; a no-op after.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  (None: "import fails")
