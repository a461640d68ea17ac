"""The paper's evaluation protocol: every test input × every test reference, ΔE and shape metrics.

:func:`evaluate` runs a model on all ``n_inputs × n_references`` pairs (the paper's 28 × 28 = 784),
batched, and measures each output (see :mod:`histgan.metrics` for what each number means):

==================  ===========================================================================
column              meaning
==================  ===========================================================================
``delta_e``         eq (12): mean L*a*b* of the output (inside the input's mask) vs. the
                    reference's (inside its mask) — the paper's Table 2 number
``delta_e2000``     CIEDE2000 between the same two means
``grade``           the JIS grade of ``delta_e`` (Table 1)
``ssim_input_lum``  SSIM of lightness L*, output vs. input, averaged inside the input's mask
``iou``             the output's foreground (nearest of the reference's mean fg/bg colours)
                    vs. the input's mask
``ssim_gt``         synthetic data only: SSIM of lightness, output vs. the true target, whole image
``psnr_gt``         synthetic data only: PSNR (dB) of the sRGB output vs. the true target
``delta_e_gt``      synthetic data only: ΔE of the output vs. the target (both inside the input's mask)
==================  ===========================================================================

A *model* is anything callable as ``model(x, x_mask, ref, ref_mask) -> out`` on batches
``(N, 3, H, W)``, ``(N, 1, H, W)``, … in [-1, 1] (:class:`histgan.inference.Translator`, the
:mod:`histgan.baselines`), or a run directory. :func:`write_report` writes the per-pair CSV, the
summary JSON, the Markdown table in the layout of the paper's Table 2 and the figures
(:mod:`histgan.figures`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from histgan import metrics as M
from histgan.errors import HistganError

__all__ = ["EvalData", "Samples", "EvalResult", "load_eval_data", "evaluate", "evaluate_checkpoints",
           "summarise", "SHAPE_METRICS", "PAPER_DELTA_E", "markdown_table", "write_report", "evaluate_runs"]

Model = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
#: Shape-fidelity columns, in report order (the ``*_gt`` ones exist for synthetic data only).
SHAPE_METRICS = ("ssim_gt", "psnr_gt", "delta_e_gt", "ssim_input_lum", "iou")


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

    @property
    def synthetic(self) -> bool:
        """Whether ground-truth targets can be rendered (a synthetic set written by histgan)."""
        return self.root is not None and (self.root / "meta.json").is_file()


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
    pairs: list[dict[str, Any]]  # one dict per (input, reference) pair, keys as in the module table
    summary: dict[str, Any]  # see :func:`summarise`
    samples: Samples | None = None  # outputs for the figures (None if none were kept)
    variant: str | None = None  # the training variant, for learned runs
    step: int | None = None  # the checkpoint's training step, for learned runs
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the run directory


def load_eval_data(root: str | os.PathLike, inputs: str = "testA", references: str = "testB",
                   size: int | None = None) -> EvalData:
    """Load ``root/inputs`` and ``root/references`` (with masks) via :func:`histgan.data.load_domain`."""
    from histgan.data import load_domain

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist; pass a dataset root with {inputs}/ and {references}/")
    x, xm, xn = load_domain(root, inputs, size)
    r, rm, rn = load_domain(root, references, size)
    if x.shape[-2:] != r.shape[-2:]:
        raise HistganError(f"inputs are {tuple(x.shape[-2:])} but references {tuple(r.shape[-2:])}; pass size=")
    return EvalData(x, xm, xn, r, rm, rn, root)


def _resolve_model(model_or_run: Model | str | os.PathLike, device: str, name: str | None
                   ) -> tuple[Model, str, str | None, int | None, dict]:
    if callable(model_or_run):
        variant = getattr(getattr(model_or_run, "config", None), "variant", None)
        step = getattr(model_or_run, "step", None)
        default = variant or getattr(model_or_run, "__name__", type(model_or_run).__name__)
        return model_or_run, name or default, variant, step, {}
    from histgan.inference import load_run

    run = load_run(model_or_run, device=device)
    return run, name or run.config.variant, run.config.variant, run.step, {"run_dir": str(model_or_run)}


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be like 'cpu' or 'cuda:0', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")


def _pair_counts(pairs: str | int, data: EvalData) -> tuple[int, int]:
    n_in, n_ref = len(data.x), len(data.ref)
    if pairs == "all":
        return n_in, n_ref
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be 'all' or a positive integer n (first n inputs × n references), got {pairs!r}")
    return min(pairs, n_in), min(pairs, n_ref)


def _ground_truth(data: EvalData, ii: Sequence[int], jj: Sequence[int]) -> Tensor:
    """True targets of the pairs, ``(B, 3, H, W)`` in [0, 1] (synthetic data only)."""
    from histgan.synthetic import ground_truth

    gts = [ground_truth(data.root, data.x_names[i], data.ref_names[j]) for i, j in zip(ii, jj)]
    return torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).float()


def _batch_metrics(out: Tensor, x_light: Tensor, x_mask: Tensor, fg: Tensor, bg: Tensor,
                   gt: Tensor | None) -> dict[str, np.ndarray]:
    """Metrics of a batch of outputs ``(B, 3, H, W)`` given precomputed input/reference statistics."""
    lab = M.rgb_to_lab(M.to_unit(out, name="model output"), value_range=(0, 1))
    m = (x_mask != 0).to(lab.dtype)
    mean = M.masked_mean(lab, m, "input mask").double().numpy()
    d = {"delta_e": M.delta_e_lab(mean, fg.numpy()), "delta_e2000": M.delta_e_lab(mean, fg.numpy(), "cie2000")}
    light = lab[:, :1] / 100.0
    if gt is not None:
        gt_lab = M.rgb_to_lab(gt, value_range=(0, 1))
        d["ssim_gt"] = M.ssim_unit(light, gt_lab[:, :1] / 100.0)
        d["psnr_gt"] = M.psnr(out, gt * 2.0 - 1.0)
        d["delta_e_gt"] = M.delta_e_lab(mean, M.masked_mean(gt_lab, m).double().numpy())
    d["ssim_input_lum"] = M.ssim_unit(light, x_light, m)
    iou = M.iou(M.segment_foreground(lab, fg.to(lab.dtype), bg.to(lab.dtype)), m > 0)
    d["iou"] = np.where(np.isnan(bg.numpy()).any(axis=1), np.nan, iou)
    return d


def evaluate(
    model_or_run: Model | str | os.PathLike,
    data: EvalData | str | os.PathLike,
    pairs: str | int = "all",
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = True,
    name: str | None = None,
    n_samples: int = 4,
) -> EvalResult:
    """Run a model on every input × reference pair and measure each output.

    Args:
        model_or_run: a model ``(x, x_mask, ref, ref_mask) -> out`` or a run directory (its latest
            checkpoint is loaded with :func:`histgan.inference.load_run`).
        data: an :class:`EvalData` or a dataset root (``testA/``, ``testB/`` and their masks).
        pairs: ``"all"`` (the paper's protocol) or ``n``: the first ``n`` inputs × first ``n`` references.
        batch_size: pairs per model call.
        device: where the model runs (metrics are computed on the CPU).
        progress: show a tqdm bar.
        name: the row name (default: the run's variant, else the callable's name).
        n_samples: keep the outputs of the first ``n_samples`` inputs × references for figures.

    Returns:
        An :class:`EvalResult`; ``pairs`` is ordered input-major.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_device(device)
    data = data if isinstance(data, EvalData) else load_eval_data(data)
    model, name, variant, step, extra = _resolve_model(model_or_run, device, name)
    n_in, n_ref = _pair_counts(pairs, data)
    k_in, k_ref = min(n_samples, n_in), min(n_samples, n_ref)
    fg, bg = M.reference_means(data.ref[:n_ref], data.ref_mask[:n_ref])
    x_light = M.rgb_to_lab(data.x[:n_in])[:, :1] / 100.0
    index = [(i, j) for i in range(n_in) for j in range(n_ref)]
    sample_out = torch.zeros(k_in, k_ref, *data.x.shape[1:]) if k_in and k_ref else None
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    from tqdm.auto import tqdm

    for b in tqdm(range(0, len(index), batch_size), desc=f"evaluate {name}", disable=not progress):
        ii, jj = map(list, zip(*index[b : b + batch_size]))
        out = _run_model(model, data, ii, jj, device)
        gt = _ground_truth(data, ii, jj) if data.synthetic else None
        metrics = _batch_metrics(out, x_light[ii], data.x_mask[ii], fg[jj], bg[jj], gt)
        for n, (i, j) in enumerate(zip(ii, jj)):
            rows.append({"input": data.x_names[i], "reference": data.ref_names[j],
                         **{k: float(v[n]) for k, v in metrics.items()}})
            rows[-1]["grade"] = M.jis_grade(rows[-1]["delta_e"])
            if sample_out is not None and i < k_in and j < k_ref:
                sample_out[i, j] = out[n]
    samples = None if sample_out is None else Samples(
        data.x[:k_in], data.x_mask[:k_in], data.ref[:k_ref], data.ref_mask[:k_ref], sample_out)
    summary = summarise(rows, name=name, variant=variant, step=step)
    summary.update(n_inputs=n_in, n_references=n_ref, seconds=round(time.perf_counter() - start, 3))
    return EvalResult(name, rows, summary, samples, variant, step, extra)


def _run_model(model: Model, data: EvalData, ii: list[int], jj: list[int], device: str) -> Tensor:
    dev = torch.device(device)
    x = data.x[ii]
    with torch.no_grad():
        out = model(x.to(dev), data.x_mask[ii].to(dev), data.ref[jj].to(dev), data.ref_mask[jj].to(dev))
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise HistganError(f"the model returned {got}; expected a tensor of the input's shape {tuple(x.shape)}")
    return out.detach().float().cpu()


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summarise(rows: list[dict[str, Any]], **info: Any) -> dict[str, Any]:
    """Summary of per-pair rows: mean ± std (sample std over pairs; NaNs skipped) of every metric.

    Returns:
        ``info`` plus ``n_pairs``, ``delta_e_mean``, ``delta_e_std``, ``grade_of_mean`` (the JIS grade
        of the mean ΔE, as the paper reads Table 2), ``grades`` (pairs per grade, Table 1 order), and
        ``<metric>_mean`` / ``<metric>_std`` for ΔE2000 and each shape metric present.
    """
    if not rows:
        raise ValueError("no pairs to summarise")
    out: dict[str, Any] = {**info, "n_pairs": len(rows)}
    for key in ("delta_e", "delta_e2000", *SHAPE_METRICS):
        if key in rows[0]:
            out[f"{key}_mean"], out[f"{key}_std"] = _mean_std([r[key] for r in rows])
    out["grade_of_mean"] = M.jis_grade(out["delta_e_mean"])
    grades = [r["grade"] for r in rows]
    out["grades"] = {g.grade: grades.count(g.grade) for g in M.JIS_TABLE}
    return out


def evaluate_checkpoints(run_dir: str | os.PathLike, data: EvalData | str | os.PathLike, pairs: str | int = 4,
                         batch_size: int = 16, device: str = "cpu", progress: bool = True) -> list[EvalResult]:
    """Evaluate every numbered checkpoint of a run on a subset (for the colour-vs-shape scatter).

    Returns:
        One :class:`EvalResult` per checkpoint, ordered by step, named ``"<variant>@<step>"``.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist. HistganError: it holds no numbered checkpoint.
    """
    from histgan.inference import list_checkpoints, load_run

    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    paths = list_checkpoints(run_dir)
    if not paths:
        raise HistganError(f"{run_dir} holds no numbered checkpoints (checkpoints/step_*.pt)")
    data = data if isinstance(data, EvalData) else load_eval_data(data)
    results = []
    for path in paths:
        run = load_run(run_dir, checkpoint=path, device=device)
        results.append(evaluate(run, data, pairs, batch_size, device, progress,
                                name=f"{run.config.variant}@{run.step}", n_samples=0))
    return results


# --------------------------------------------------------------------------------------------------
# the report

#: The paper's Table 2 (mean ΔE over its 784 pairs of *real* knee photographs), by variant.
PAPER_DELTA_E = {"cyclegan": 14.1, "cyclegan_sn": 13.7, "histgan_uni": 5.0, "histgan_bi": 4.6}
#: Row labels for the learned variants, in the paper's Table 2 order.
VARIANT_LABELS = {"cyclegan": "CycleGAN", "cyclegan_sn": "CycleGAN + SN",
                  "histgan_uni": "proposed, one direction", "histgan_bi": "proposed, both directions"}
_COLUMNS = {"ssim_gt": "SSIM vs GT (L*)", "psnr_gt": "PSNR vs GT (dB)", "delta_e_gt": "ΔE vs GT",
            "ssim_input_lum": "SSIM vs input (L*, fg)", "iou": "fg IoU"}


def report_order(results: dict[str, EvalResult]) -> list[str]:
    """Row order of the report: paper variants in Table 2 order, other models, then the baselines."""
    from histgan.baselines import BASELINES

    paper = [n for v in PAPER_DELTA_E for n, r in results.items() if r.variant == v]
    base = [n for n in BASELINES if n in results]
    return paper + [n for n in results if n not in paper and n not in base] + base


def _label(name: str, result: EvalResult) -> str:
    from histgan.baselines import BASELINE_LABELS

    label = VARIANT_LABELS.get(result.variant or "", BASELINE_LABELS.get(name, name))
    return label if label == name else f"{label} (`{name}`)"


def _fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def markdown_table(results: dict[str, EvalResult]) -> str:
    """The report's table in the layout of the paper's Table 2, with shape columns and the paper's ΔE."""
    order = report_order(results)
    shape = [k for k in SHAPE_METRICS if any(f"{k}_mean" in results[n].summary for n in order)]
    head = ["model", "ΔE (mean ± std)", "JIS grade of mean", "ΔE2000 (mean ± std)",
            *[_COLUMNS[k] for k in shape], "paper ΔE (Table 2)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in order:
        s, r = results[n].summary, results[n]
        cells = [_label(n, r), f"{_fmt(s['delta_e_mean'])} ± {_fmt(s['delta_e_std'])}", s["grade_of_mean"],
                 f"{_fmt(s['delta_e2000_mean'])} ± {_fmt(s['delta_e2000_std'])}",
                 *[_fmt(s.get(f"{k}_mean"), 3) for k in shape], _fmt(PAPER_DELTA_E.get(r.variant or ""), 1)]
        lines.append("| " + " | ".join(cells) + " |")
    n_pairs = {results[n].summary["n_pairs"] for n in order}
    note = (f"ΔE: eq (12), CIE 1976 distance of mean L*a*b* colours (output inside the input's mask vs. "
            f"reference inside its mask), over {'/'.join(map(str, sorted(n_pairs)))} input × reference pairs; "
            "grades from the paper's Table 1. 'paper ΔE (Table 2)' is the paper's own number on its real "
            "knee photographs, for comparison of magnitude only: it is not measured on this data.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else (str(float(v)) if np.isinf(v) else float(v))
    return v


def _pairs_csv(results: dict[str, EvalResult], order: list[str]) -> str:
    import csv
    import io

    keys = ["input", "reference", "delta_e", "delta_e2000", "grade",
            *[k for k in SHAPE_METRICS if any(k in results[n].pairs[0] for n in order)]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", *keys])
    for n in order:
        for row in results[n].pairs:
            vals = [row.get(k, float("nan")) for k in keys]
            writer.writerow([n, *["" if isinstance(v, float) and np.isnan(v) else
                                  (f"{v:.6g}" if isinstance(v, float) else v) for v in vals]])
    return buf.getvalue()


def write_report(results: dict[str, EvalResult], out_dir: str | os.PathLike,
                 checkpoints: dict[str, list[EvalResult]] | None = None, figures: bool = True) -> dict[str, Path]:
    """Write ``pairs.csv``, ``summary.json``, ``table2.md`` and the figures into ``out_dir`` (atomically).

    Args:
        results: evaluations by row name (learned runs and baselines).
        out_dir: output folder (created).
        checkpoints: per run, the :func:`evaluate_checkpoints` results, for ``colour_vs_shape.png``.
        figures: also write ``fig3.png``, ``fig4_<name>.png``, ``histograms_<name>.png``.

    Returns:
        The written files by short name.
    """
    from histgan import figures as fig
    from histgan.io import atomic_write_json, atomic_write_text

    if not results:
        raise ValueError("results is empty: evaluate at least one model or baseline")
    out, order = Path(out_dir), report_order(results)
    written = {"pairs": out / "pairs.csv", "summary": out / "summary.json", "table": out / "table2.md"}
    atomic_write_text(written["pairs"], _pairs_csv(results, order))
    atomic_write_json(written["summary"], _json_safe({
        "models": {n: results[n].summary for n in order}, "paper_table2_delta_e": PAPER_DELTA_E,
        "jis_table": [vars(g) for g in M.JIS_TABLE], "jis_source": M.JIS_SOURCE,
        "checkpoints": {k: [r.summary for r in v] for k, v in (checkpoints or {}).items()}}))
    atomic_write_text(written["table"], markdown_table(results))
    if figures:
        written.update(fig.write_figures({n: results[n] for n in order}, out, checkpoints))
    return written


def evaluate_runs(runs: Sequence[str | os.PathLike], data: str | os.PathLike, out_dir: str | os.PathLike,
                  pairs: str | int = "all", baselines: bool = True, checkpoint_pairs: int = 4,
                  batch_size: int = 16, device: str = "cpu", size: int | None = None,
                  progress: bool = True) -> dict[str, Path]:
    """Evaluate runs (and the baselines) on ``data`` and :func:`write_report` into ``out_dir``.

    What ``python -m histgan evaluate`` does. A row is named by its run's variant, or
    ``<variant>_<run folder>`` when two runs share a variant. ``checkpoint_pairs = 0`` skips the
    per-checkpoint evaluation (and the colour-vs-shape figure).
    """
    from histgan.baselines import BASELINES
    from histgan.inference import load_run

    _check_device(device)
    if not runs and not baselines:
        raise ValueError("nothing to evaluate: give --runs, or leave the baselines on")
    missing = [str(r) for r in runs if not Path(r).is_dir()]
    if missing:
        raise FileNotFoundError(f"run directory {missing[0]} does not exist")
    ev = load_eval_data(data, size=size)
    models = {}
    for run in runs:
        translator = load_run(run, device=device)
        name = translator.config.variant
        models[name if name not in models else f"{name}_{Path(run).name}"] = (translator, run)
    results = {n: evaluate(m, ev, pairs, batch_size, device, progress, name=n) for n, (m, _) in models.items()}
    for n, (_, run) in models.items():
        results[n].extra["run_dir"] = str(run)
    if baselines:
        results.update({n: evaluate(f, ev, pairs, batch_size, device, progress, name=n) for n, f in BASELINES.items()})
    sweeps = None
    if checkpoint_pairs:
        sweeps = {n: evaluate_checkpoints(run, ev, checkpoint_pairs, batch_size, device, progress)
                  for n, (_, run) in models.items()}
    return write_report(results, out_dir, sweeps)
