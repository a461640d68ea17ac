"""Where and how training runs: seeds, device, mixed precision, environment report, DDP set-up."""

from __future__ import annotations

import os
import platform
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histgan.errors import HistganError

__all__ = ["seed_everything", "select_device", "autocast_dtype", "environment_report", "Distributed",
           "init_distributed", "get_rng_state", "set_rng_state"]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices); on CPU also ask torch for deterministic kernels.

    Args:
        seed: the seed.
        deterministic: ``torch.use_deterministic_algorithms(deterministic, warn_only=True)``: CPU runs
            are then bit-reproducible; ``False`` turns the process-wide switch off again, so a CUDA run
            after a CPU run in the same process gets its fast kernels (``cudnn.benchmark``, see
            :func:`select_device`) instead of deterministic ones.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA, then MPS, then CPU; an explicit device must exist.

    Raises:
        HistganError: a CUDA/MPS device was asked for that this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HistganError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HistganError(f"device {name!r} requested but this torch sees no CUDA GPU; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HistganError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        torch.backends.cudnn.benchmark = True
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HistganError(f"device {name!r} requested but MPS is not available; use --device cpu or auto")
    return device


def autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``: bf16, or ``None`` for full float32.

    ``"auto"`` turns bf16 on where the hardware computes it natively: CUDA GPUs of compute
    capability 8.0 or newer (Ampere, Hopper, ...); older GPUs emulate bf16 slowly, and CPUs and MPS
    train in float32. ``True`` forces bf16 anywhere (CPU autocast supports it too).
    """
    if amp == "auto":
        native = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
        return torch.bfloat16 if native else None
    return torch.bfloat16 if amp else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_report(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """What a run ran on: versions, device, threads, git commit (for ``environment.json``)."""
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "world_size": world_size,
        "git_commit": _git_commit(),
    }
    return report


# ---- RNG state as tensors/lists (loadable with torch.load(weights_only=True)) --------------------
def get_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as lists and tensors."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(py_state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- distributed ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0  # global rank
    world_size: int = 1  # processes in all
    local_rank: int = 0  # rank on this machine (picks the GPU)

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, samples and checkpoints."""
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE > 1``); pick the device.

    NCCL on CUDA, gloo otherwise. Each rank uses ``cuda:LOCAL_RANK`` when the device is CUDA.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), select_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return Distributed(rank, world, local), device
