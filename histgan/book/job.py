"""The main job's two records: where one run of the pipeline reads and writes (:class:`Job`) and one
step of it (:class:`Stage`). :mod:`histgan.book.stages` builds the stages, :mod:`histgan.book.keys`
hashes them, :mod:`histgan.book.pipeline` runs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Job", "Stage"]


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
    jobs: tuple[Any, ...] = ()  # the same work as histgan.train.parallel.Job's, for the pipeline's pool
    resumes: bool = False  # its jobs keep their completion markers (finished runs are skipped) or run again
