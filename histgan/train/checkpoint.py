"""Checkpoints: atomic writes, safe loading (``weights_only=True``), rotation, fallback on corruption.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — the config as a dict,
RNG states as tensors/lists, image pools as tensors — so ``torch.load(weights_only=True)`` reads it
and a file that would run code when unpickled is refused. It is stored with a SHA-256 of its bytes,
checked on load, so silent corruption (a flipped bit) is an error naming the file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Collection

import torch

from histgan.errors import HistganError
from histgan.io import atomic_path
from histgan.train.run_files import checkpoint_path, list_checkpoints, rotate_checkpoints  # re-exported here

__all__ = ["save_checkpoint", "load_checkpoint", "list_checkpoints", "checkpoint_path", "rotate_checkpoints",
           "load_latest_good", "resume_wanted", "checkpoint_to_resume", "write_run_checkpoint", "RunLock", "ENVELOPE"]

#: Marks a checkpoint file's envelope: ``{"format", "sha256", "state"}``.
ENVELOPE = "histgan-checkpoint/1"


def _digest(obj: Any, h: "hashlib._Hash | None" = None) -> str:
    """SHA-256 over a state's structure, its tensors' raw bytes and its plain values (in order)."""
    h = h or hashlib.sha256()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key, value in obj.items():
            h.update(repr(key).encode())
            _digest(value, h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for value in obj:
            _digest(value, h)
    elif isinstance(obj, bytes):
        h.update(b"B" + obj)
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` to ``path`` atomically (temporary file, then ``os.replace``), with a checksum.

    The file holds ``{"format", "sha256", "state"}``; the SHA-256 covers every tensor's bytes and
    every plain value, and :func:`load_checkpoint` recomputes it, so a flipped bit (which
    ``torch.load`` alone does not notice inside tensor data) is reported.
    """
    envelope = {"format": ENVELOPE, "sha256": _digest(state), "state": state}
    with atomic_path(path) as tmp:
        torch.save(envelope, tmp)


def _torch_load(source: Any, path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` turning every failure into a HistganError naming ``path``."""
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise HistganError(f"checkpoint {path} was refused: loading it would run code from the file "
                               f"(only tensors and plain data are allowed). Is it from a trusted source? "
                               f"Detail: {str(exc).splitlines()[0]}") from None
        raise HistganError(f"checkpoint {path} is corrupt ({str(exc).splitlines()[0]}); "
                           "use another checkpoint of the run") from None
    except Exception as exc:  # random bytes can fail in any way inside the unpickler: all mean corrupt
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise HistganError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {detail}); "
                           "use another checkpoint of the run") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and verify its checksum.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        HistganError: the file would execute code when unpickled (refused), is truncated/corrupt
            (including a checksum mismatch), or does not hold a dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = _torch_load(path, path, map_location)
    if isinstance(state, dict) and state.get("format") == ENVELOPE:
        if _digest(state.get("state")) != state.get("sha256"):
            raise HistganError(f"checkpoint {path} is corrupt (checksum mismatch: the file changed after it "
                               "was written); use another checkpoint of the run")
        state = state["state"]
    if not isinstance(state, dict):
        raise HistganError(f"checkpoint {path} does not hold a histgan checkpoint (a dict), got {type(state).__name__}")
    return state


def write_run_checkpoint(run_dir: str | os.PathLike, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``RUN/checkpoints/step_XXXXXX.pt``, copy it to ``latest.pt`` (both atomic), keep ``keep``.

    A process killed between the two writes leaves ``latest.pt`` one checkpoint behind: resuming
    from it redoes those steps and reaches the same weights. Returns the numbered checkpoint's path.
    """
    path = checkpoint_path(run_dir, step)
    save_checkpoint(path, state)
    with atomic_path(Path(run_dir) / "checkpoints" / "latest.pt") as tmp:
        shutil.copyfile(path, tmp)
    rotate_checkpoints(run_dir, keep)
    return path


def load_latest_good(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu"
                     ) -> tuple[dict[str, Any], Path] | None:
    """The newest loadable checkpoint of a run: ``latest.pt``, else numbered ones newest first.

    Every unreadable candidate gives a warning naming it. Returns ``None`` when the run has no
    checkpoint at all.

    Raises:
        HistganError: checkpoints exist but none is readable.
    """
    latest = Path(run_dir) / "checkpoints" / "latest.pt"
    candidates = ([latest] if latest.exists() else []) + list_checkpoints(run_dir)[::-1]
    if not candidates:
        return None
    errors = []
    for path in candidates:
        try:
            return load_checkpoint(path, map_location), path
        except HistganError as exc:
            errors.append(str(exc))
            warnings.warn(f"{exc}; trying an older checkpoint", RuntimeWarning, stacklevel=2)
    raise HistganError(f"no readable checkpoint in {Path(run_dir) / 'checkpoints'}: " + " | ".join(errors))


def resume_wanted(resume: bool | str, run_dir: str | os.PathLike, what: str) -> bool:
    """``resume`` (``True``, ``False`` or ``"auto"``) as a decision: ``"auto"`` resumes when ``run_dir``
    holds a checkpoint.

    Raises:
        HistganError: any other value (``what`` names the kind of run in the message).
    """
    if resume not in (True, False, "auto"):
        raise HistganError(f"{what} resume must be True, False or 'auto', got {resume!r}")
    if resume == "auto":
        return any((Path(run_dir) / "checkpoints").glob("*.pt"))
    return bool(resume)


def checkpoint_to_resume(run_dir: str | os.PathLike, config: dict[str, Any], resumable: Collection[str],
                         resume: bool, what: str, how_to_resume: str, otherwise: str = "") -> dict[str, Any] | None:
    """The newest readable checkpoint of ``run_dir`` that a run with ``config`` may resume from.

    Args:
        run_dir: the run's folder.
        config: the run's settings now (a dataclass's ``asdict``), compared with the checkpoint's
            ``"config"`` except for the names in ``resumable`` (e.g. the number of steps).
        resume: whether the caller asked to continue; a folder with checkpoints is refused otherwise.
        what: the kind of run in messages (``"masker"``, ``"dcgan"``).
        how_to_resume: the end of the refusal, e.g. ``"pass --resume to continue, or choose another --out"``.
        otherwise: appended to the refusal of other settings (what to do instead).

    Returns:
        the checkpoint's state, or ``None`` when the folder holds none (a fresh start).

    Raises:
        HistganError: checkpoints exist but ``resume`` is false, or they were written with other settings.
    """
    run_dir = Path(run_dir)
    found = load_latest_good(run_dir) if (run_dir / "checkpoints").is_dir() else None
    if found is None:
        return None
    if not resume:
        raise HistganError(f"{what} folder {run_dir} already holds checkpoints; {how_to_resume}")
    state, path = found
    diff = [f"{k}={v!r} (now {config[k]!r})" for k, v in state["config"].items() if k not in resumable and config[k] != v]
    if diff:
        raise HistganError(f"{what} checkpoint {path} was trained with other settings: {', '.join(diff)}{otherwise}")
    return state


class RunLock:
    """A lock file ``RUN/train.lock`` holding the PID of the training process that owns the run.

    A second training on the same run directory is refused with a message naming the PID; a lock
    left by a process that no longer exists (killed, crashed) is taken over with a warning.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / "train.lock"
        self.held = False

    def acquire(self) -> None:
        """Take the lock (atomically: the PID file is written aside, then hard-linked into place)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            fd, tmp = tempfile.mkstemp(prefix=".train.lock.", dir=self.path.parent)
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
                os.close(fd)
                os.link(tmp, self.path)  # atomic, fails if the lock exists
                self.held = True
                return
            except FileExistsError:
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
            pid = _read_pid(self.path)
            if pid is not None and _alive(pid):
                raise HistganError(f"run directory {self.path.parent} is in use by training process {pid} "
                                   f"(lock file {self.path}); wait for it to finish or choose another --out")
            warnings.warn(f"taking over stale lock {self.path} (process {pid} is gone)", RuntimeWarning, stacklevel=2)
            self.path.unlink(missing_ok=True)
        raise HistganError(f"could not take the lock {self.path}; remove it if no training runs there")

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.held and _read_pid(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
