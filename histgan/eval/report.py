"""The evaluation report: Table 2 in the paper's layout with shape and realism columns, CSV, JSON, figures.

:func:`write_report` writes, into one folder and atomically: ``pairs.csv`` (a row per model and
pair), ``summary.json`` (every summary, the realism calibration, the paper's Table 1 and 2) and
``table2.md`` (:func:`markdown_table`), and the figures of :mod:`histgan.eval.figures`.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from histgan.eval import figures as fig
from histgan import colour_difference as CD
from histgan.eval.baselines import BASELINE_LABELS, BASELINES
from histgan.io import atomic_write_json, atomic_write_text
from histgan.eval.realism_sets import REALISM_METRICS
from histgan.eval.results import EvalResult

__all__ = ["PAPER_DELTA_E", "VARIANT_LABELS", "SHAPE_METRICS", "COLUMNS", "CALIBRATION_LABELS", "TABLE_GROUPS", "summarise",
           "edge_rim_table",
           "report_order", "markdown_table", "write_report", "ablation_table"]

#: The paper's Table 2 (mean ΔE over its 784 pairs of *real* knee photographs), by variant.
PAPER_DELTA_E = {"cyclegan": 14.1, "cyclegan_sn": 13.7, "histgan_uni": 5.0, "histgan_bi": 4.6}
#: Row labels for the learned variants, in the paper's Table 2 order.
VARIANT_LABELS = {"cyclegan": "CycleGAN", "cyclegan_sn": "CycleGAN + SN",
                  "histgan_uni": "proposed, one direction", "histgan_bi": "proposed, both directions"}
#: Per-pair shape-fidelity columns, in report order (the ``*_gt`` ones exist for synthetic data only).
SHAPE_METRICS = ("ssim_gt_fg", "ssim_gt_fg_lowpass", "ssim_gt", "psnr_gt", "delta_e_gt", "edge_excess", "ssim_input_lum",
                 "iou")
#: Column headings of the shape and realism metrics, and the legend line of each.
COLUMNS = {
    "ssim_gt_fg": ("SSIM fg vs GT", "SSIM of L* against the true target, averaged over the input's mask, "
                   "after pasting the output's foreground onto the target's background (the main shape score)"),
    "ssim_gt_fg_lowpass": ("SSIM fg vs GT, low-pass", "the same after a Gaussian low-pass (σ = 1.5 px at 64², scaled "
                           "with size): shading, not the draw of fine skin texture"),
    "ssim_gt": ("SSIM whole vs GT (secondary)", "SSIM of L* over the whole image, backgrounds included (the "
                "models are never told the background, so this mixes in a guess)"),
    "psnr_gt": ("PSNR vs GT (dB)", "PSNR of sRGB against the true target, whole image"),
    "delta_e_gt": ("ΔE vs GT", "eq (12) between the output and the true target, both inside the input's mask"),
    "edge_excess": ("edge excess ΔE", "mean per-pixel ΔE against the true target along the input mask's inner "
                    "edge (2 px) minus inside it: rims or bleeding along the silhouette; 0 for the truth itself"),
    "ssim_input_lum": ("SSIM vs input (L*, fg)", "SSIM of L* against the input, inside its mask (needs no truth)"),
    "iou": ("fg IoU", "the output segmented by the reference's mean fg/bg colours vs. the input's mask"),
    "swd_whole": ("SWD×10³ whole", "sliced Wasserstein distance of Laplacian-pyramid 7×7 patches to held-out real "
                  "images (Karras et al. 2018), mean over levels; lower is more real"),
    "swd_fg": ("SWD×10³ fg", "the same with every background, generated and real, set to one grey"),
    "c2st_whole": ("C2ST acc. whole", "held-out accuracy of a small CNN trained to tell outputs from real images "
                   "(Lopez-Paz & Oquab 2017); 0.5 = indistinguishable, 1 = always told apart"),
    "c2st_fg": ("C2ST acc. fg", "the same with every background set to one grey"),
    "stripes": ("stripe energy %", "share of the spectral energy (grey level, whole image) on the axes k_x = 0 "
                "and k_y = 0, i.e. in horizontal and vertical stripes; compare with the real images' rows"),
}
#: Labels of the realism calibration rows.
CALIBRATION_LABELS = {"floor": "calibration: other real images (floor)",
                      "ground_truth": "calibration: true targets (perfect translation)",
                      "ceiling": "calibration: inputs X, untranslated (ceiling)"}


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
    out["grade_of_mean"] = CD.jis_grade(out["delta_e_mean"])
    grades = [r["grade"] for r in rows]
    out["grades"] = {g.grade: grades.count(g.grade) for g in CD.JIS_TABLE}
    return out


def report_order(results: dict[str, EvalResult]) -> list[str]:
    """Row order of the report: paper variants in Table 2 order, other models, then the baselines."""
    paper = [n for v in PAPER_DELTA_E for n, r in results.items() if r.variant == v]
    base = [n for n in BASELINES if n in results]
    return paper + [n for n in results if n not in paper and n not in base] + base


def _label(name: str, result: EvalResult) -> str:
    label = VARIANT_LABELS.get(result.variant or "", BASELINE_LABELS.get(name, name))
    return label if label == name else f"{label} (`{name}`)"


def _fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _calibration(results: dict[str, EvalResult]) -> dict[str, dict[str, Any]]:
    """The realism calibration of the first result that has one (all share the data, so the same)."""
    return next((r.calibration for r in results.values() if r.calibration), {})


def _realism_cells(values: dict[str, Any], columns: list[str]) -> list[str]:
    return [_fmt(_shown(k, values.get(k)), 1 if k.startswith("swd") or k in PERCENT else 3) for k in columns]


#: Shares shown in percent.
PERCENT = {"stripes"}


def _shown(key: str, value: Any) -> Any:
    """A metric's value as a table shows it (shares in :data:`PERCENT` × 100)."""
    return 100 * value if key in PERCENT and value is not None else value


#: Column groups of :func:`markdown_table`: the paper's colour columns, shape against the truth, realism.
TABLE_GROUPS = ("colour", "shape", "realism")


def markdown_table(results: dict[str, EvalResult], groups: Sequence[str] = TABLE_GROUPS) -> str:
    """Table 2's layout (ΔE first, the paper's ΔE last) with shape, realism and calibration rows, and a legend.

    Args:
        results: one :class:`EvalResult` per model or baseline.
        groups: which of :data:`TABLE_GROUPS` to show (all by default; the book shows one at a time, so that
            a table fits the page): ``colour`` (ΔE, its grade, ΔE2000, the paper's ΔE), ``shape`` (the
            metrics against the true target and the input) and ``realism`` (with its calibration rows).
    """
    unknown = sorted(set(groups) - set(TABLE_GROUPS))
    if unknown or not groups:
        raise ValueError(f"groups must be some of {TABLE_GROUPS}, got {list(groups)}")
    order = report_order(results)
    shape = [k for k in SHAPE_METRICS if "shape" in groups and any(f"{k}_mean" in results[n].summary for n in order)]
    real = [k for k in REALISM_METRICS if "realism" in groups and any(k in results[n].summary for n in order)]
    colour = "colour" in groups
    head = ["model", *(["ΔE (mean ± std)", "JIS grade of mean", "ΔE2000 (mean ± std)"] if colour else []),
            *[COLUMNS[k][0] for k in shape + real], *(["paper ΔE (Table 2)"] if colour else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in order:
        s, r = results[n].summary, results[n]
        first = [f"{_fmt(s['delta_e_mean'])} ± {_fmt(s['delta_e_std'])}", s["grade_of_mean"],
                 f"{_fmt(s['delta_e2000_mean'])} ± {_fmt(s['delta_e2000_std'])}"] if colour else []
        cells = [_label(n, r), *first, *[_fmt(s.get(f"{k}_mean"), 3) for k in shape], *_realism_cells(s, real),
                 *([_fmt(PAPER_DELTA_E.get(r.variant or ""), 1)] if colour else [])]
        lines.append("| " + " | ".join(cells) + " |")
    calib = _calibration(results) if real else {}
    blank = ["—"] * (3 * colour + len(shape))
    for key in (k for k in CALIBRATION_LABELS if k in calib):
        lines.append("| " + " | ".join([CALIBRATION_LABELS[key], *blank, *_realism_cells(calib[key], real),
                                        *(["—"] if colour else [])]) + " |")
    return "\n".join(lines) + "\n\n" + _legend(results, order, shape + real, calib, colour) + "\n"


def _legend(results: dict[str, EvalResult], order: list[str], keys: list[str], calib: dict,
            colour: bool = True) -> str:
    n_pairs = {results[n].summary["n_pairs"] for n in order}
    pairs = f"over {'/'.join(map(str, sorted(n_pairs)))} input × reference pairs"
    lines = [f"ΔE: eq (12), CIE 1976 distance of mean L\\*a\\*b\\* colours (output inside the input's mask vs. "
             f"reference inside its mask), {pairs}; "
             "grades from the paper's Table 1. 'paper ΔE (Table 2)' is the paper's own number on its real "
             "knee photographs, for comparison of magnitude only: it is not measured on this data."] if colour \
        else [f"Means {pairs}."]
    lines += [f"- **{COLUMNS[k][0]}**: {COLUMNS[k][1]}." for k in keys]
    if calib:
        info = next(results[n].summary for n in order if "realism_n" in results[n].summary)
        srcs = "; ".join(f"{CALIBRATION_LABELS[k].split(': ')[1]}: {v['source']}" for k, v in calib.items())
        lines.append(f"- Realism sets hold {info['realism_n']} images each: the outputs of one seeded draw of the "
                     f"evaluated pairs, and the real reference ({info['realism_real']} real Y images). "
                     f"Calibration rows, scored against the same reference: {srcs}. Outputs repeat the few test "
                     "references' skin and backgrounds, real images do not; the true-targets row (synthetic data) "
                     "shows what that repetition costs a perfect translation.")
    return "\n".join(lines)


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else (str(float(v)) if np.isinf(v) else float(v))
    return v


def _pairs_csv(results: dict[str, EvalResult], order: list[str]) -> str:
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
        checkpoints: per run, the :func:`histgan.eval.trained_runs.evaluate_checkpoints` results, for
            ``colour_vs_shape.png``.
        figures: also write ``fig3.png``, ``fig4_<name>.png``, ``histograms_<name>.png``.

    Returns:
        The written files by short name.
    """
    if not results:
        raise ValueError("results is empty: evaluate at least one model or baseline")
    out, order = Path(out_dir), report_order(results)
    written = {"pairs": out / "pairs.csv", "summary": out / "summary.json", "table": out / "table2.md"}
    atomic_write_text(written["pairs"], _pairs_csv(results, order))
    atomic_write_json(written["summary"], _json_safe({
        "models": {n: results[n].summary for n in order}, "realism_calibration": _calibration(results),
        "paper_table2_delta_e": PAPER_DELTA_E, "jis_table": [vars(g) for g in CD.JIS_TABLE],
        "jis_source": CD.JIS_SOURCE,
        "checkpoints": {k: [r.summary for r in v] for k, v in (checkpoints or {}).items()}}))
    atomic_write_text(written["table"], markdown_table(results))
    if figures:
        written.update(fig.write_figures({n: results[n] for n in order}, out, checkpoints))
    return written


#: The ablation's columns: (key in a point's record, heading, digits); a share is shown in percent.
ABLATION_COLUMNS = (("delta_e_mean", "ΔE", 2), ("ssim_gt_fg_mean", "SSIM fg vs GT", 3),
                    ("ssim_gt_fg_lowpass_mean", "low-pass", 3), ("swd_whole", "SWD×10³ whole", 1),
                    ("swd_fg", "SWD×10³ fg", 1), ("c2st_whole", "C2ST whole", 3), ("c2st_fg", "C2ST fg", 3),
                    ("stripes", "stripe energy %", 1), ("delta_e_shifted_mean", "ΔE shifted refs", 2),
                    ("sec_per_step", "s / step", 2))


def ablation_table(results: dict[str, Any]) -> str:
    """A markdown table of an ablation (``benchmarks/ablation_translator.py``'s results): one row per
    point — its name, what it changes, and the evaluation's colour, shape and realism numbers."""
    head = ["point", "what changes", *(h for _, h, _ in ABLATION_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results["points"].items():
        cells = [f"`{name}`", r["what"], *("–" if r.get(k) is None else _fmt(_shown(k, r[k]), d)
                                           for k, _, d in ABLATION_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def edge_rim_table(results: dict[str, Any]) -> str:
    """A markdown table of ``benchmarks/edge_rims.py``'s results: one row per model or baseline, its edge
    excess (:func:`histgan.metrics.edge_excess`) over every test pair, mean and median."""
    lines = ["| model | edge excess ΔE (mean) | median | pairs |", "|---|---|---|---|"]
    for name, r in results["rows"].items():
        label = BASELINE_LABELS.get(name, f"`{name}`")
        lines.append(f"| {label} | {_fmt(r['edge_excess_mean'])} | {_fmt(r['edge_excess_median'])} | {r['pairs']} |")
    return "\n".join(lines)
