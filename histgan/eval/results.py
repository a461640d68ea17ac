"""What an evaluation works on and produces: the test data, one model's result, kept sample outputs.

Plain data classes shared by the protocol (:mod:`histgan.eval.evaluate`), the report
(:mod:`histgan.eval.report`) and the figures (:mod:`histgan.eval.figures`), so that each of those imports
this module and none imports another just for a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from histgan.errors import HistganError

__all__ = ["Model", "EvalData", "Samples", "EvalResult", "load_eval_data"]

#: A model: ``(x, x_mask, ref, ref_mask) -> out`` on batches ``(N, 3, H, W)``, ``(N, 1, H, W)``, … in [-1, 1].
Model = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class EvalData:
    """Test inputs (domain X) and references (domain Y), images in [-1, 1] with {0, 1} masks."""

    x: Tensor  # (N_in, 3, H, W) inputs
    x_mask: Tensor  # (N_in, 1, H, W)
    x_names: list[str]  # file names of the inputs
    ref: Tensor  # (N_ref, 3, H, W) references
    ref_mask: Tensor  # (N_ref, 1, H, W)
    ref_names: list[str]  # file names of the references
    root: Path | None = None  # dataset root; ground truth exists when root/meta.json does
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # realism sets, built once per n

    @property
    def synthetic(self) -> bool:
        """Whether ground-truth targets can be rendered (a synthetic set written by histgan)."""
        return self.root is not None and (self.root / "meta.json").is_file()

    def ground_truth(self, ii: Sequence[int], jj: Sequence[int]) -> Tensor:
        """True targets of the pairs (input ``ii[k]``, reference ``jj[k]``): ``(B, 3, H, W)`` in [0, 1].

        Synthetic data only (:func:`histgan.data.synthetic.ground_truth`).
        """
        from histgan.data.synthetic import ground_truth

        gts = [ground_truth(self.root, self.x_names[i], self.ref_names[j]) for i, j in zip(ii, jj)]
        return torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).float()


def load_eval_data(root: str | os.PathLike, inputs: str = "testA", references: str = "testB",
                   size: int | None = None) -> EvalData:
    """Load ``root/inputs`` and ``root/references`` (with masks) via :func:`histgan.data.folders.load_domain`."""
    from histgan.data.folders import load_domain

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist; pass a dataset root with {inputs}/ and {references}/")
    x, xm, xn = load_domain(root, inputs, size)
    r, rm, rn = load_domain(root, references, size)
    if x.shape[-2:] != r.shape[-2:]:
        raise HistganError(f"inputs are {tuple(x.shape[-2:])} but references {tuple(r.shape[-2:])}; pass size=")
    return EvalData(x, xm, xn, r, rm, rn, root)


@dataclass
class Samples:
    """The first ``k`` inputs × ``k`` references and their outputs, kept for the figures."""

    x: Tensor  # (k_in, 3, H, W)
    x_mask: Tensor  # (k_in, 1, H, W)
    ref: Tensor  # (k_ref, 3, H, W)
    ref_mask: Tensor  # (k_ref, 1, H, W)
    out: Tensor  # (k_in, k_ref, 3, H, W) in [-1, 1]


@dataclass
class EvalResult:
    """One model's evaluation: a row per pair, a summary, and a few outputs for figures."""

    name: str  # row name in the report (a variant, a baseline's name, or the caller's)
    pairs: list[dict[str, Any]]  # one dict per (input, reference) pair, keys as in histgan.eval.evaluate's table
    summary: dict[str, Any]  # see histgan.eval.report.summarise, plus the set-level realism scores
    samples: Samples | None = None  # outputs for the figures (None if none were kept)
    variant: str | None = None  # the training variant, for learned runs
    step: int | None = None  # the checkpoint's training step, for learned runs
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the run directory
    calibration: dict[str, dict[str, Any]] | None = None  # realism of the floor / ceiling / truth sets
