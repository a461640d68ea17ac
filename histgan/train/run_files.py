"""A run folder's numbered checkpoints, by name only: listing, rotation, their steps — without torch.

:mod:`histgan.train.checkpoint` writes and reads the files; tools that only need to know which
checkpoints a run holds (a sweep's collection, a finished run's step) use this module and need not
import torch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["checkpoint_path", "list_checkpoints", "rotate_checkpoints", "newest_step"]

_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``RUN/checkpoints/step_XXXXXX.pt``."""
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}.pt"


def _numbered(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name)))


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The numbered checkpoints of a run, sorted by step (``latest.pt`` not included)."""
    return [p for _, p in _numbered(run_dir)]


def newest_step(run_dir: str | os.PathLike) -> int | None:
    """The step of the run's newest numbered checkpoint, from its file name (None: no checkpoint)."""
    found = _numbered(run_dir)
    return found[-1][0] if found else None


def rotate_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest numbered checkpoints (``keep = 0`` keeps all)."""
    if keep <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
