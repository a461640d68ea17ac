"""The paper's evaluation protocol: every test input × every test reference; colour, shape and realism.

:func:`evaluate` runs a model on all ``n_inputs × n_references`` pairs (the paper's 28 × 28 = 784),
batched, and measures each output (see :mod:`histgan.metrics` for what each number means):

=======================  ======================================================================
column                   meaning
=======================  ======================================================================
``delta_e``              eq (12): mean L*a*b* of the output (inside the input's mask) vs. the
                         reference's (inside its mask) — the paper's Table 2 number
``delta_e2000``          CIEDE2000 between the same two means
``grade``                the JIS grade of ``delta_e`` (Table 1)
``ssim_gt_fg``           synthetic data only: SSIM of lightness against the true target, averaged
                         over the input's mask, the output's foreground pasted onto the target's
                         background first (:func:`histgan.metrics.foreground_ssim`)
``ssim_gt_fg_lowpass``   the same after a Gaussian low-pass (σ = 1.5 px at 64², scaled with size)
``ssim_gt``              synthetic data only: SSIM of lightness against the target, whole image
                         (secondary: backgrounds are never encoded, so this mixes in a guess)
``psnr_gt``              synthetic data only: PSNR (dB) of the sRGB output vs. the true target
``delta_e_gt``           synthetic data only: ΔE of the output vs. the target (inside the input's mask)
``edge_excess``          synthetic data only: mean per-pixel ΔE to the target along the input mask's inner
                         edge (2 px) minus inside it — rims or bleeding along the silhouette
                         (:func:`histgan.metrics.edge_excess`)
``ssim_input_lum``       SSIM of lightness L*, output vs. input, averaged inside the input's mask
``iou``                  the output's foreground (nearest of the reference's mean fg/bg colours)
                         vs. the input's mask
=======================  ======================================================================

Set-level realism (:mod:`histgan.eval.realism`, sets chosen by :mod:`histgan.eval.realism_sets`) goes into
the summary: ``swd_whole``, ``swd_fg`` (sliced Wasserstein distance ×10³ of Laplacian patches to
held-out real Y images) and ``c2st_whole``, ``c2st_fg`` (classifier two-sample test accuracy), with
the calibration rows (other real images, the untranslated inputs, the true targets) in
:attr:`EvalResult.calibration`.

A *model* is anything callable as ``model(x, x_mask, ref, ref_mask) -> out`` on batches
``(N, 3, H, W)``, ``(N, 1, H, W)``, … in [-1, 1] (:class:`histgan.inference.Translator`, the
:mod:`histgan.eval.baselines`), or a run directory. :mod:`histgan.eval.trained_runs` evaluates runs and their
checkpoints this way; :func:`histgan.eval.report.write_report` writes the per-pair CSV, the summary JSON,
the Markdown table in the layout of the paper's Table 2 and the figures.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from histgan import metrics as M
from histgan import colour_difference as CD
from histgan.eval import realism_sets as RS
from histgan.errors import HistganError
from histgan.eval.report import summarise
from histgan.eval.results import EvalData, EvalResult, Model, Samples, load_eval_data
from histgan.train.runtime import select_device

__all__ = ["evaluate", "batch_metrics", "with_predicted_reference_masks", "shift_reference_colours"]

#: Seeds the realism sets, patch positions, projections and classifiers (one fixed draw for every model).
REALISM_SEED = 0


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


def _pair_counts(pairs: str | int, data: EvalData) -> tuple[int, int]:
    n_in, n_ref = len(data.x), len(data.ref)
    if pairs == "all":
        return n_in, n_ref
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be 'all' or a positive integer n (first n inputs × n references), got {pairs!r}")
    return min(pairs, n_in), min(pairs, n_ref)


def batch_metrics(out: Tensor, x_light: Tensor, x_mask: Tensor, fg: Tensor, bg: Tensor,
                  gt: Tensor | None) -> dict[str, np.ndarray]:
    """Metrics of a batch of outputs ``(B, 3, H, W)`` given precomputed input/reference statistics."""
    # eq (12) as colour_difference.delta_e computes it (per-pixel L*a*b*, masked mean, delta_e_lab); the
    # per-pixel values serve the shape metrics too, and each reference's mean was taken once
    lab = CD.rgb_to_lab(out, name="model output")
    mean = CD.mean_of_lab(lab, x_mask, "input mask")
    d = {"delta_e": CD.delta_e_lab(mean, fg.numpy()), "delta_e2000": CD.delta_e_lab(mean, fg.numpy(), "cie2000")}
    m = (x_mask != 0).to(lab.dtype)
    light = lab[:, :1] / 100.0
    if gt is not None:
        gt_lab = CD.rgb_to_lab(gt, value_range=(0, 1), name="ground truth")
        gt_light = gt_lab[:, :1] / 100.0
        d["ssim_gt_fg"] = M.foreground_ssim(light, gt_light, m)
        d["ssim_gt_fg_lowpass"] = M.foreground_ssim(light, gt_light, m, M.lowpass_sigma(out.shape[-1]))
        d["ssim_gt"] = M.ssim_unit(light, gt_light)
        d["psnr_gt"] = M.psnr(out, gt * 2.0 - 1.0)
        d["delta_e_gt"] = CD.delta_e_lab(mean, CD.mean_of_lab(gt_lab, x_mask, "input mask"))
        d["edge_excess"] = M.edge_excess(lab, gt_lab, x_mask)
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
    realism: bool | str = "auto",
) -> EvalResult:
    """Run a model on every input × reference pair and measure each output.

    Args:
        model_or_run: a model ``(x, x_mask, ref, ref_mask) -> out`` or a run directory (its latest
            checkpoint is loaded with :func:`histgan.inference.load_run`).
        data: an :class:`EvalData` or a dataset root (``testA/``, ``testB/`` and their masks).
        pairs: ``"all"`` (the paper's protocol) or ``n``: the first ``n`` inputs × first ``n`` references.
        batch_size: pairs per model call.
        device: where the model runs: ``"auto"`` (:func:`histgan.train.runtime.select_device`), ``"cpu"``,
            ``"cuda:0"``, … (metrics are computed on the CPU).
        progress: show a tqdm bar.
        name: the row name (default: the run's variant, else the callable's name).
        n_samples: keep the outputs of the first ``n_samples`` inputs × references for figures.
        realism: score set-level realism (:mod:`histgan.eval.realism_sets`): ``"auto"`` when every set can
            hold :data:`histgan.eval.realism_sets.MIN_IMAGES` images, ``True`` whenever it can hold 2,
            ``False`` never.

    Returns:
        An :class:`EvalResult`; ``pairs`` is ordered input-major.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = str(select_device(device))
    data = data if isinstance(data, EvalData) else load_eval_data(data)
    model, name, variant, step, extra = _resolve_model(model_or_run, device, name)
    n_in, n_ref = _pair_counts(pairs, data)
    realism_ref = _realism_reference(data, n_in, n_ref, realism)
    keep = {p: k for k, p in enumerate(realism_ref.pairs)} if realism_ref else {}
    kept = torch.zeros(len(keep), *data.x.shape[1:])
    k_in, k_ref = min(n_samples, n_in), min(n_samples, n_ref)
    sample_out = torch.zeros(k_in, k_ref, *data.x.shape[1:]) if k_in and k_ref else None
    start = time.perf_counter()
    rows = _measure_pairs(model, data, n_in, n_ref, batch_size, device, progress, name, sample_out, keep, kept)
    samples = None if sample_out is None else Samples(
        data.x[:k_in], data.x_mask[:k_in], data.ref[:k_ref], data.ref_mask[:k_ref], sample_out)
    summary = summarise(rows, name=name, variant=variant, step=step)
    calibration = None
    if realism_ref is not None:
        realism_start = time.perf_counter()
        summary.update(RS.score(realism_ref, kept, data.x_mask[[i for i, _ in realism_ref.pairs]]),
                       realism_n=realism_ref.n, realism_real=realism_ref.sources["real"])
        calibration = _calibration(data, realism_ref)
        summary["realism_seconds"] = round(time.perf_counter() - realism_start, 3)
    summary.update(n_inputs=n_in, n_references=n_ref, seconds=round(time.perf_counter() - start, 3))
    return EvalResult(name, rows, summary, samples, variant, step, extra, calibration)


def _measure_pairs(model: Model, data: EvalData, n_in: int, n_ref: int, batch_size: int, device: str,
                   progress: bool, name: str, sample_out: Tensor | None, keep: dict, kept: Tensor
                   ) -> list[dict[str, Any]]:
    """Per-pair rows, input-major; fills ``sample_out`` (figures) and ``kept`` (the realism pairs)."""
    from histgan.progress import progress_bar

    fg, bg = M.reference_means(data.ref[:n_ref], data.ref_mask[:n_ref])
    x_light = CD.rgb_to_lab(data.x[:n_in])[:, :1] / 100.0
    index = [(i, j) for i in range(n_in) for j in range(n_ref)]
    rows: list[dict[str, Any]] = []
    for b in progress_bar(range(0, len(index), batch_size), desc=f"evaluate {name}", disable=not progress):
        ii, jj = map(list, zip(*index[b : b + batch_size]))
        out = _run_model(model, data, ii, jj, device)
        gt = data.ground_truth(ii, jj) if data.synthetic else None
        metrics = batch_metrics(out, x_light[ii], data.x_mask[ii], fg[jj], bg[jj], gt)
        for n, (i, j) in enumerate(zip(ii, jj)):
            rows.append({"input": data.x_names[i], "reference": data.ref_names[j],
                         **{k: float(v[n]) for k, v in metrics.items()}})
            rows[-1]["grade"] = CD.jis_grade(rows[-1]["delta_e"])
            if sample_out is not None and i < sample_out.shape[0] and j < sample_out.shape[1]:
                sample_out[i, j] = out[n]
            if (i, j) in keep:
                kept[keep[(i, j)]] = out[n]
    return rows


def _realism_reference(data: EvalData, n_in: int, n_ref: int, realism: bool | str) -> RS.RealismReference | None:
    """The realism sets for these pairs (built once per data and pair count), or None when skipped."""
    if realism not in (True, False, "auto"):
        raise HistganError(f"realism must be True, False or 'auto', got {realism!r}")
    if realism is False:
        return None
    n = RS.realism_size(data, n_in * n_ref)
    if n < (RS.MIN_IMAGES if realism == "auto" else 2):
        if realism is True:
            raise HistganError(f"realism=True needs at least 2 images per set, but these {n_in} × {n_ref} pairs and "
                               "the real images available allow fewer; evaluate more pairs or pass realism=False")
        return None
    key = ("realism", n_in, n_ref, n)
    if key not in data.cache:
        data.cache[key] = RS.build_reference(data, n_in, n_ref, n, seed=REALISM_SEED)
    return data.cache[key]


def _calibration(data: EvalData, ref: RS.RealismReference) -> dict[str, dict[str, Any]]:
    """Realism of the calibration sets, scored once per realism reference."""
    key = ("calibration", id(ref))
    if key not in data.cache:
        data.cache[key] = RS.calibration(ref)
    return data.cache[key]


def with_predicted_reference_masks(model: Model, masker: Any) -> Model:
    """``model`` conditioned on the masker's reference masks instead of the given ones.

    Evaluating the result measures, against the **true** reference colours (the metrics still use the
    data's masks), what a user's photograph without a mask costs: the colour code is taken over the
    foreground the :class:`histgan.train.masker.Masker` predicts.
    """
    from histgan.train.masker import predict_mask

    def translate(x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor) -> Tensor:
        return model(x, x_mask, ref, predict_mask(masker, ref).to(ref_mask))

    translate.__name__ = f"{getattr(model, '__name__', 'model')}_predicted_reference_masks"
    return translate


def _run_model(model: Model, data: EvalData, ii: list[int], jj: list[int], device: str) -> Tensor:
    dev = torch.device(device)
    x = data.x[ii]
    with torch.no_grad():
        out = model(x.to(dev), data.x_mask[ii].to(dev), data.ref[jj].to(dev), data.ref_mask[jj].to(dev))
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise HistganError(f"the model returned {got}; expected a tensor of the input's shape {tuple(x.shape)}")
    return out.detach().float().cpu()


def shift_reference_colours(data: EvalData, hue_degrees: float = 10.0, chroma_scale: float = 1.3) -> EvalData:
    """The same test set with references of colours outside the training photographs' range.

    Inside each reference's mask, its CIE L*a*b* colours keep their lightness L* while their hue angle
    turns by ``hue_degrees`` (towards red for negative values, towards yellow for positive ones) and their
    chroma is multiplied by ``chroma_scale`` (redder, more saturated skin than the benchmark's swatches
    when > 1); colours that leave the sRGB gamut are clipped. The background is unchanged. The result has
    no dataset root (``root=None``): its references have no rendered ground truth, and ΔE is measured
    against the shifted references themselves.
    """
    if not (np.isfinite(hue_degrees) and np.isfinite(chroma_scale) and chroma_scale > 0):
        raise ValueError(f"hue_degrees must be finite and chroma_scale > 0, got {hue_degrees!r}, {chroma_scale!r}")
    lab = CD.rgb_to_lab(data.ref.double())
    angle = torch.tensor(np.deg2rad(hue_degrees), dtype=lab.dtype)
    a, b = lab[:, 1], lab[:, 2]
    turned = torch.stack([lab[:, 0], chroma_scale * (a * angle.cos() - b * angle.sin()),
                          chroma_scale * (a * angle.sin() + b * angle.cos())], dim=1)
    shifted = CD.lab_to_rgb(turned).to(data.ref.dtype)
    mask = data.ref_mask > 0
    ref = torch.where(mask, shifted, data.ref)
    return EvalData(data.x, data.x_mask, data.x_names, ref, data.ref_mask,
                    [f"{n} (hue {hue_degrees:+g}°, chroma ×{chroma_scale:g})" for n in data.ref_names], root=None)
