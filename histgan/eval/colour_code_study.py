"""Measurements of the colour code as a latent space, by the evaluation protocol (:mod:`histgan.eval.evaluate`).

* :func:`morph_study` — morph each of a few inputs between two references (codes mixed, or histograms
  mixed, :mod:`histgan.colour_code`) and measure, per frame ``t``: the output's mean L*a*b* (over the
  input's mask) and how far it has moved from reference ``a``'s mean towards ``b``'s; the evenness of
  the path (ΔE between consecutive frames and their coefficient of variation, std / mean); and, on the
  synthetic benchmark, the frame against its true target — the input rendered at the skin colour a
  fraction ``t`` of the way between the references' (:func:`histgan.data.intermediate.ground_truth_between`):
  ΔE and foreground SSIM, as for the test pairs.
* :func:`refinement_study` — refine the codes of test pairs (:func:`histgan.colour_code.refine_codes`,
  all pairs in one batch, one path) and measure them after chosen step counts: ΔE of eq (12), JIS
  grades and foreground SSIM against the truth, exactly as :func:`histgan.eval.evaluate.evaluate` does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from histgan import metrics as M
from histgan import colour_difference as CD
from histgan.colour_code import REFINE_LAMBDA_LAB, REFINE_LR, morph_path, refine_codes
from histgan.eval.evaluate import batch_metrics
from histgan.eval.results import EvalData
from histgan.networks.generator import mask_kwargs

__all__ = ["MODES", "extreme_references", "morph_study", "sample_pairs", "refinement_study",
           "refinement_verdict", "morph_verdict", "morph_row_frames", "plot_morph", "plot_refinement",
           "morph_table", "refinement_table", "show_morph_frame"]

#: The two ways of mixing references: their colour codes, or their histograms (then encoded).
MODES = ("code", "histogram")
_GRADES = tuple(g.grade for g in CD.JIS_TABLE)


def extreme_references(data: EvalData) -> tuple[int, int]:
    """Indices of the test references with the lightest and the darkest foreground (mean L*)."""
    fg, _ = M.reference_means(data.ref, data.ref_mask)
    return int(fg[:, 0].argmax()), int(fg[:, 0].argmin())


def _truth_between(data: EvalData, ii: Sequence[int], a: int, b: int, t: float) -> Tensor:
    from histgan.data.intermediate import ground_truth_between

    gts = [ground_truth_between(data.root, data.x_names[i], data.ref_names[a], data.ref_names[b], t) for i in ii]
    return torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).float()


@torch.no_grad()
def morph_study(model: Any, data: EvalData, inputs: Sequence[int], a: int, b: int, ts: Sequence[float]
                ) -> dict[str, Any]:
    """Morph ``inputs`` from reference ``a`` to ``b`` at fractions ``ts`` (sorted, from 0 to 1).

    Returns:
        ``{"ts", "lab_a", "lab_b", "truth" (T, N, 3, H, W) in [0, 1] or None, mode: {...}}`` with, per
        mode of :data:`MODES`: ``frames (T, N, 3, H, W)``, ``lab (T, N, 3)``, ``progress (T, N)`` (the
        mean's projection on the a→b segment: 0 at a's mean, 1 at b's), ``monotone (N,)``, ``steps
        (T − 1, N)`` ΔE between consecutive frames, ``cv (N,)``, and with truth ``delta_e_gt``,
        ``ssim_gt_fg`` ``(T, N)``.
    """
    ii = list(inputs)
    x, xm = data.x[ii].to(model.device), data.x_mask[ii]
    fg, bg = M.reference_means(data.ref, data.ref_mask)
    h = model.histogram(data.ref[[a, b]], data.ref_mask[[a, b]])
    bd = model.backdrop(data.ref[[a, b]], data.ref_mask[[a, b]])  # None unless trained with backdrop_code
    x_light = CD.rgb_to_lab(data.x[ii])[:, :1] / 100.0
    truth = torch.stack([_truth_between(data, ii, a, b, t) for t in ts]) if data.synthetic else None
    axis = (fg[b] - fg[a]).double()
    out: dict[str, Any] = {"ts": list(ts), "lab_a": fg[a].double().numpy(), "lab_b": fg[b].double().numpy(),
                           "truth": truth}
    for mode in MODES:
        frames = morph_path(model.G, x, h[:1], h[1:], ts, mode, None if bd is None else (bd[:1], bd[1:]),
                            xm.to(model.device)).cpu()
        lab = torch.stack([torch.from_numpy(CD.mean_lab(f, xm)) for f in frames])  # (T, N, 3) float64
        progress = ((lab - fg[a].double()) @ axis / axis.dot(axis)).numpy()
        steps = (lab[1:] - lab[:-1]).norm(dim=-1).numpy()
        r = {"frames": frames, "lab": lab.numpy(), "progress": progress, "steps": steps,
             "monotone": (np.diff(progress, axis=0) >= -1e-3).all(axis=0),
             "cv": steps.std(axis=0) / np.maximum(steps.mean(axis=0), 1e-12)}
        if truth is not None:
            per_t = [batch_metrics(f, x_light, xm, fg[[a] * len(ii)], bg[[a] * len(ii)], g) for f, g in zip(frames, truth)]
            r["delta_e_gt"] = np.stack([m["delta_e_gt"] for m in per_t])
            r["ssim_gt_fg"] = np.stack([m["ssim_gt_fg"] for m in per_t])
        out[mode] = r
    return out


def sample_pairs(n_inputs: int, n_references: int, n: int | str, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` (input, reference) pairs drawn without replacement from all ``n_inputs × n_references``
    (under ``seed``, sorted input-major), or all of them for ``"all"`` or ``n`` at least their number."""
    every = [(i, j) for i in range(n_inputs) for j in range(n_references)]
    if n == "all" or (not isinstance(n, str) and n >= len(every)):
        return every
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"pairs must be 'all' or a positive integer, got {n!r}")
    pick = np.random.default_rng(seed).choice(len(every), size=n, replace=False)
    return [every[k] for k in sorted(pick)]


def refinement_study(model: Any, data: EvalData, pairs: Sequence[tuple[int, int]], record: Sequence[int] = (10, 50, 200),
                     lr: float = REFINE_LR, lambda_lab: float = REFINE_LAMBDA_LAB) -> dict[str, Any]:
    """Refine every pair's code along one path of ``max(record)`` steps (all pairs in one batch) and
    measure the outputs before (step 0) and after each step count in ``record``.

    Returns:
        ``{"pairs", "seconds_per_image", "losses" (steps + 1, P), "outputs" {step: (P, 3, H, W)},
        "rows": [{"step", "delta_e", "ssim_gt_fg" (None without truth), "grades" {grade: share}}, …],
        "per_pair" {step: {"delta_e": (P,), "ssim_gt_fg": (P,)}}}``.
    """
    ii, jj = map(list, zip(*pairs))
    x, xm = data.x[ii].to(model.device), data.x_mask[ii].to(model.device)
    fg, bg = M.reference_means(data.ref, data.ref_mask)
    h = model.histogram(data.ref[jj], data.ref_mask[jj])
    with torch.no_grad():
        code = model.G.encode(h, model.backdrop(data.ref[jj], data.ref_mask[jj]))
    steps = max(record)
    r = refine_codes(model.G, x, code, h, steps, lr=lr, x_mask=xm, bins=model.config.bins,
                     bandwidth=model.config.bandwidth, lab_target=fg[jj].float().to(model.device),
                     lambda_lab=lambda_lab, record=tuple(record))
    x_light = CD.rgb_to_lab(data.x[ii])[:, :1] / 100.0
    gt = data.ground_truth(ii, jj) if data.synthetic else None
    study: dict[str, Any] = {"pairs": list(pairs), "seconds_per_image": r.seconds / len(pairs),
                             "losses": r.losses.cpu().numpy(), "outputs": {}, "rows": [], "per_pair": {}}
    for step, c in [(0, code), *sorted(r.codes.items())]:
        with torch.no_grad():
            out = model.G(x, code=c, **mask_kwargs(model.G, xm)).clamp(-1, 1).cpu()
        m = batch_metrics(out, x_light, data.x_mask[ii], fg[jj], bg[jj], gt)
        grades = [CD.jis_grade(float(d)) for d in m["delta_e"]]
        study["outputs"][step] = out
        study["per_pair"][step] = {"delta_e": m["delta_e"], "ssim_gt_fg": m.get("ssim_gt_fg")}
        study["rows"].append({"step": step, "delta_e": float(np.mean(m["delta_e"])),
                              "ssim_gt_fg": float(np.mean(m["ssim_gt_fg"])) if gt is not None else None,
                              "grades": {g: grades.count(g) / len(grades) for g in _GRADES}})
    return study


def refinement_verdict(study: dict[str, Any], goal_delta_e: float = 1.6, max_ssim_drop: float = 0.02) -> str:
    """One sentence: did the longest refinement reach mean ΔE ≤ ``goal_delta_e`` (JIS AA) while the
    foreground SSIM against the truth fell by at most ``max_ssim_drop``?"""
    first, last = study["rows"][0], study["rows"][-1]
    reached = last["delta_e"] <= goal_delta_e
    text = (f"After {last['step']} steps the mean ΔE over {len(study['pairs'])} pairs went from "
            f"{first['delta_e']:.1f} to {last['delta_e']:.1f} ({CD.jis_grade(last['delta_e'])}), "
            f"{'within' if reached else 'short of'} the goal of {goal_delta_e}")
    if first["ssim_gt_fg"] is None:
        return text + "; without true targets, shading fidelity was not measured."
    drop = first["ssim_gt_fg"] - last["ssim_gt_fg"]
    kept = drop <= max_ssim_drop
    return (text + f"; foreground SSIM against the truth changed by {-drop:+.3f} "
            f"({'within' if kept else 'beyond'} the allowed drop of {max_ssim_drop}): the goal "
            f"{'held' if reached and kept else 'did not hold'}.")


def morph_verdict(study: dict[str, Any]) -> str:
    """One sentence comparing code and histogram mixing: monotone paths, evenness, ΔE to the truth."""
    parts = []
    for mode in MODES:
        r = study[mode]
        gt = f", mean ΔE to the true intermediate {r['delta_e_gt'].mean():.1f}" if "delta_e_gt" in r else ""
        parts.append(f"{mode} mixing: {int(r['monotone'].sum())} of {len(r['monotone'])} paths monotone, "
                     f"step-ΔE CV {r['cv'].mean():.2f}{gt}")
    return "; ".join(parts) + "."


def morph_row_frames(study: dict[str, Any], k: int = 0) -> list[Tensor]:
    """Input ``k``'s frames side by side, per ``t``: code mixing | histogram mixing [| true target],
    each ``(3, H, W·n)`` in [-1, 1] (for :func:`histgan.book.frame_slider.frame_slider`)."""
    rows = []
    for n in range(len(study["ts"])):
        parts = [study[mode]["frames"][n, k] for mode in MODES]
        if study["truth"] is not None:
            parts.append(study["truth"][n, k] * 2.0 - 1.0)
        rows.append(torch.cat(parts, dim=-1))
    return rows


def plot_morph(study: dict[str, Any], k: int = 0):
    """Figure: input ``k``'s frames (one row per mode, and the truth) above the paths' progress from
    ``a`` to ``b`` and the frames' ΔE to the true intermediate, against ``t`` (mean over inputs)."""
    import matplotlib.pyplot as plt

    from histgan.images import to_display

    ts, rows = study["ts"], [*MODES] + (["true target"] if study["truth"] is not None else [])
    fig = plt.figure(figsize=(1.1 * len(ts) + 1, 1.2 * len(rows) + 2.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.2 * len(rows), 2.6])
    axes = top.subplots(len(rows), len(ts), squeeze=False)
    for r, name in enumerate(rows):
        for n, t in enumerate(ts):
            img = study[name]["frames"][n, k] if name in MODES else study["truth"][n, k] * 2 - 1
            axes[r, n].imshow(to_display(img)), axes[r, n].set_xticks([]), axes[r, n].set_yticks([])
            axes[0, n].set_title(f"t = {t:.2f}", fontsize=8)
        axes[r, 0].set_ylabel(name if name not in MODES else f"{name} mix", fontsize=8)
    left, right = bottom.subplots(1, 2)
    for mode in MODES:
        left.plot(ts, study[mode]["progress"].mean(1), marker="o", label=f"{mode} mixing")
        if "delta_e_gt" in study[mode]:
            right.plot(ts, study[mode]["delta_e_gt"].mean(1), marker="o", label=f"{mode} mixing")
    left.plot(ts, ts, ":", color="grey", label="even path")
    left.set(xlabel="t", ylabel="progress a → b of the mean L*a*b*"), left.legend(fontsize=7)
    right.set(xlabel="t", ylabel="ΔE to the true intermediate"), right.legend(fontsize=7)
    return fig


def plot_refinement(study: dict[str, Any]):
    """Figure: mean ΔE and foreground SSIM against refinement steps, and the JIS grade shares per step."""
    import matplotlib.pyplot as plt

    rows = study["rows"]
    steps = [r["step"] for r in rows]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3), layout="constrained")
    a.plot(steps, [r["delta_e"] for r in rows], marker="o"), a.axhline(1.6, ls=":", color="grey", label="AA (1.6)")
    a.set(xlabel="refinement steps", ylabel="mean ΔE (eq 12)", xscale="symlog", xlim=(0, None)), a.legend(fontsize=7)
    if rows[0]["ssim_gt_fg"] is not None:
        b.plot(steps, [r["ssim_gt_fg"] for r in rows], marker="o")
        b.axhline(rows[0]["ssim_gt_fg"] - 0.02, ls=":", color="grey", label="allowed drop (0.02)"), b.legend(fontsize=7)
    b.set(xlabel="refinement steps", ylabel="SSIM fg vs truth", xscale="symlog", xlim=(0, None))
    bottom = np.zeros(len(rows))
    for g in _GRADES:
        share = np.array([r["grades"][g] for r in rows])
        c.bar([str(s) for s in steps], share, bottom=bottom, label=g)
        bottom += share
    c.set(xlabel="refinement steps", ylabel="share of pairs")
    c.legend(fontsize=7, title="JIS grade", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def morph_table(study: dict[str, Any]) -> str:
    """Markdown table of :func:`morph_study`: per mixing mode, monotone paths, evenness, truth scores."""
    rows = ["| mixing | monotone paths | step-ΔE CV | ΔE to true intermediate | SSIM fg vs truth |",
            "|---|---|---|---|---|"]
    for mode in MODES:
        r = study[mode]
        truth = (f"{r['delta_e_gt'].mean():.1f} | {r['ssim_gt_fg'].mean():.3f}" if "delta_e_gt" in r else "– | –")
        rows.append(f"| {mode} | {int(r['monotone'].sum())}/{len(r['monotone'])} | {r['cv'].mean():.2f} | {truth} |")
    return "\n".join(rows)


def refinement_table(study: dict[str, Any]) -> str:
    """Markdown table of :func:`refinement_study`: per step count, mean ΔE, SSIM and JIS grade shares."""
    rows = ["| steps | mean ΔE | SSIM fg vs truth | " + " / ".join(_GRADES) + " |", "|---|---|---|---|"]
    for r in study["rows"]:
        ssim = "–" if r["ssim_gt_fg"] is None else f"{r['ssim_gt_fg']:.3f}"
        shares = " / ".join(f"{r['grades'][g]:.2f}" for g in _GRADES)
        rows.append(f"| {r['step']} | {r['delta_e']:.2f} | {ssim} | {shares} |")
    return "\n".join(rows)


def show_morph_frame(G: Any, x: Tensor, h_a: Tensor, h_b: Tensor, t: float, mode: str = "code",
                     x_mask: Tensor | None = None) -> None:
    """Draw the frame at ``t`` of the morph of ``x (1, 3, H, W)`` (for an interactive slider; ``x_mask`` for a
    generator trained with ``mask_input``)."""
    import matplotlib.pyplot as plt

    from histgan.images import to_display

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(to_display(morph_path(G, x, h_a, h_b, [t], mode, x_mask=x_mask)[0, 0])), ax.set_axis_off()
    ax.set_title(f"{mode} mixing, t = {t:.2f}")
    plt.show()
