"""The paper's figures and ours, drawn with matplotlib (Agg, no display needed), saved atomically.

* :func:`fig3` — the paper's Fig. 3: rows of input | reference | (ground truth, on synthetic data) |
  both-directions | one-direction | CycleGAN + SN | CycleGAN (only the models given), then any other
  models (the baselines).
* :func:`fig4` — the paper's Fig. 4 for one model: inputs down the left, references along the top,
  outputs in the cells.
* :func:`histogram_overlay` — per channel R, G, B: the reference's foreground histogram against the
  output's (inside the input's mask), the quantity the histogram loss (eq 6) pulls together.
* :func:`colour_vs_shape` — the paper's open problem made visible: mean ΔE (colour) against a shape
  metric for every checkpoint of each run; a run that moves left while sinking trades shape for colour.

Each function takes :class:`histgan.eval.results.EvalResult` objects and returns a
:class:`matplotlib.figure.Figure`; :func:`save_figure` writes one as PNG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from histgan.histogram import hard_histogram
from histgan.io import save_figure  # re-exported: the figures' writer
from histgan.eval.results import EvalData, EvalResult
from histgan.images import to_display

__all__ = ["fig3", "fig4", "histogram_overlay", "colour_vs_shape", "save_figure", "write_figures"]

#: Fig. 3's model columns in the paper's order, with their headings.
FIG3_COLUMNS = {"histgan_bi": "both directions", "histgan_uni": "one direction",
                "cyclegan_sn": "CycleGAN + SN", "cyclegan": "CycleGAN"}
_CELL_INCHES = 1.4
_TITLE_INCHES = 0.5


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    height = n_rows * _CELL_INCHES + _TITLE_INCHES
    fig = Figure(figsize=(n_cols * _CELL_INCHES, height))  # fixed spacing: faster than a layout engine
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - _TITLE_INCHES / height, wspace=0.04,
                        hspace=0.04)
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _show(ax, image, title: str | None = None) -> None:
    ax.imshow(to_display(image), interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=8)


def _with_samples(results: dict[str, EvalResult]) -> dict[str, EvalResult]:
    kept = {n: r for n, r in results.items() if r.samples is not None}
    if not kept:
        raise ValueError("none of the results kept sample outputs (evaluate with n_samples > 0)")
    return kept


def fig3(results: dict[str, EvalResult], rows: int = 4, truth: EvalData | None = None) -> Figure:
    """Fig. 3: row ``i`` shows input ``i`` with reference ``i`` and each model's output.

    Columns: input | reference | ground truth (when ``truth``, the synthetic test set the results were
    measured on, is given) | the paper's variants present (:data:`FIG3_COLUMNS` order) | others.
    """
    results = _with_samples(results)
    paper = [n for v in FIG3_COLUMNS for n, r in results.items() if r.variant == v]
    names = paper + [n for n in results if n not in paper]
    first = results[names[0]].samples
    k_in, k_ref = first.out.shape[:2]
    n = min(rows, k_in)
    gt = int(truth is not None and truth.synthetic)
    fig, axes = _grid(n, 2 + gt + len(names))
    for i in range(n):
        j = i % k_ref
        _show(axes[i, 0], first.x[i], "input" if i == 0 else None)
        _show(axes[i, 1], first.ref[j], "reference" if i == 0 else None)
        if gt:
            _show(axes[i, 2], truth.ground_truth([i], [j])[0] * 2.0 - 1.0, "ground truth" if i == 0 else None)
        for c, name in enumerate(names):
            r = results[name]
            title = FIG3_COLUMNS.get(r.variant or "", name.removeprefix("baseline_")) if i == 0 else None
            _show(axes[i, 2 + gt + c], r.samples.out[i, j % r.samples.out.shape[1]], title)
    return fig


def fig4(result: EvalResult) -> Figure:
    """Fig. 4 for one model: inputs down the left, references across the top, outputs in the cells."""
    s = _with_samples({result.name: result})[result.name].samples
    k_in, k_ref = s.out.shape[:2]
    fig, axes = _grid(k_in + 1, k_ref + 1)
    for j in range(k_ref):
        _show(axes[0, j + 1], s.ref[j], "reference" if j == 0 else None)
    for i in range(k_in):
        _show(axes[i + 1, 0], s.x[i], "input" if i == 0 else None)
        for j in range(k_ref):
            _show(axes[i + 1, j + 1], s.out[i, j])
    fig.suptitle(result.name, fontsize=9, y=1 - 0.1 / fig.get_figheight())
    return fig


def histogram_overlay(result: EvalResult, pairs: int = 3, bins: int = 32) -> Figure:
    """Per-channel foreground histograms: reference (grey bars) vs. output (line), for pairs ``(i, i)``."""
    s = _with_samples({result.name: result})[result.name].samples
    k_in, k_ref = s.out.shape[:2]
    n = min(pairs, k_in)
    fig = Figure(figsize=(9, 2.2 * n))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.88, wspace=0.25, hspace=0.5)
    axes = fig.subplots(n, 3, squeeze=False)
    edges = np.linspace(-1, 1, bins + 1)
    for i in range(n):
        j = i % k_ref
        h_ref = hard_histogram(s.ref[j : j + 1].float(), bins, s.ref_mask[j : j + 1].float())[0]
        h_out = hard_histogram(s.out[i, j : j + 1].float(), bins, s.x_mask[i : i + 1].float())[0]
        for c, (ax, colour) in enumerate(zip(axes[i], ("red", "green", "blue"))):
            ax.stairs(h_ref[c].numpy(), edges, fill=True, color="0.75", label="reference")
            ax.stairs(h_out[c].numpy(), edges, color=colour, linewidth=1.5, label="output")
            ax.set_xlim(-1, 1)
            ax.set_xticks([-1, -0.5, 0, 0.5, 1])
            ax.set_title(f"pair ({i}, {j}) · {colour[0].upper()}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{result.name}: foreground histograms (values in [-1, 1])", fontsize=9)
    return fig


def _shape_key(runs: Sequence[EvalResult]) -> str:
    return "ssim_gt_fg" if all("ssim_gt_fg_mean" in r.summary for r in runs) else "ssim_input_lum"


def colour_vs_shape(checkpoints: dict[str, list[EvalResult]], shape_key: str | None = None) -> Figure:
    """Mean ΔE (x) against a shape metric (y) per checkpoint; one line per run, points labelled by step.

    ``shape_key`` defaults to ``"ssim_gt_fg"`` (SSIM against the truth over the foreground) when every
    result has ground truth, else ``"ssim_input_lum"``.
    """
    runs = [r for rs in checkpoints.values() for r in rs]
    if not runs:
        raise ValueError("checkpoints holds no evaluations")
    key = shape_key or _shape_key(runs)
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, rs in checkpoints.items():
        xs = [r.summary["delta_e_mean"] for r in rs]
        ys = [r.summary.get(f"{key}_mean", np.nan) for r in rs]
        line, = ax.plot(xs, ys, "-o", ms=4, label=name)
        for r, x, y in zip(rs, xs, ys):
            ax.annotate(str(r.step), (x, y), fontsize=6, color=line.get_color(), xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("mean ΔE to the reference (colour; lower is better)")
    ax.set_ylabel(f"mean {key} (shape; higher is better)")
    ax.legend(fontsize=7)
    ax.set_title("colour vs. shape over training checkpoints", fontsize=9)
    return fig


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def write_figures(results: dict[str, EvalResult], out_dir: str | os.PathLike,
                  checkpoints: dict[str, list[EvalResult]] | None = None) -> dict[str, Path]:
    """All figures for a report into ``out_dir``; returns the written paths by short name."""
    out, written = Path(out_dir), {}
    with_samples = {n: r for n, r in results.items() if r.samples is not None}
    if with_samples:
        written["fig3"] = save_figure(fig3(with_samples), out / "fig3.png")
    for name, r in with_samples.items():
        written[f"fig4_{name}"] = save_figure(fig4(r), out / f"fig4_{_slug(name)}.png")
        written[f"histograms_{name}"] = save_figure(histogram_overlay(r), out / f"histograms_{_slug(name)}.png")
    if checkpoints and any(checkpoints.values()):
        written["colour_vs_shape"] = save_figure(colour_vs_shape(checkpoints), out / "colour_vs_shape.png")
    return written
