"""How well edits in the colour code's space do what they promise (:mod:`histgan.edits`).

* **Accuracy**: for requested changes ``t`` of one attribute, the achieved change of the output's
  mean foreground L*, a*, b* (against the unedited output of the same code): the slope of achieved on
  requested (1 is exact), its R², and the slopes of the *other* two channels (side effects, 0 is clean).
  As a yardstick, the same for references whose colours really are shifted by ``t``.
* **Commutativity** (the comparison of Aoshima & Matsubara, "Deep curvilinear editing: commutative and
  nonlinear image manipulation for pretrained deep generative model"): edit A then B against B then A;
  the ΔE (eq 12) between the two outputs' mean colours and the gap between the two codes relative to
  the length of the edit.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from histgan.colour_difference import delta_e_lab, mean_lab
from histgan.edits import ATTRIBUTES, METHODS, EditDirections, apply_edits, rbf_gradient, shift_references

__all__ = ["render", "edit_response", "reference_response", "accuracy", "accuracy_table", "commutativity",
           "commutativity_table",
           "edit_grid", "describe", "direction_alignment",
           "alignment_table"]

_CHANNELS = ("ΔL*", "Δa*", "Δb*")


@torch.no_grad()
def render(model: Any, x: Tensor, code: Tensor, x_mask: Tensor | None = None) -> Tensor:
    """``G(x, code)`` clamped to [-1, 1], on the CPU: ``(N, 3, H, W)``, ``(N, D)`` → ``(N, 3, H, W)``; ``x_mask``
    for a model trained with ``mask_input``."""
    dev = model.device
    return model.G(x.to(dev).float(), code=code.to(dev).float(), **model.mask_kwargs(x_mask)).clamp(-1, 1).cpu()


def edit_response(model: Any, d: EditDirections, x: Tensor, x_mask: Tensor, code: Tensor, attribute: str,
                  amounts: Sequence[float], method: str = "linear") -> np.ndarray:
    """Achieved change of mean foreground L*a*b* for each requested amount: ``(len(amounts), N, 3)``.

    ``x (N, 3, H, W)`` inputs with masks ``x_mask (N, 1, H, W)``, ``code (N, D)`` their reference codes.
    """
    base = mean_lab(render(model, x, code, x_mask), x_mask)
    return np.stack([mean_lab(render(model, x, apply_edits(code, {attribute: t}, d, method), x_mask), x_mask) - base
                     for t in amounts])


@torch.no_grad()
def reference_response(model: Any, x: Tensor, x_mask: Tensor, ref: Tensor, ref_mask: Tensor, attribute: str,
                       amounts: Sequence[float]) -> np.ndarray:
    """The same measurement with the *references* shifted in L*a*b* (:func:`histgan.edits.shift_references`)
    instead of the codes: what the generator does with a reference that really is ``t`` lighter —
    the most a code edit can expect. ``ref (N, 3, H', W')`` with masks → ``(len(amounts), N, 3)``."""
    k = ATTRIBUTES.index(attribute)

    def out(shift: float) -> np.ndarray:
        s = torch.zeros(len(ref), 3)
        s[:, k] = shift
        refs = shift_references(ref, ref_mask, s)
        return mean_lab(render(model, x, model.G.encode(model.histogram(refs, ref_mask)).cpu(), x_mask), x_mask)

    base = out(0.0)
    return np.stack([out(t) - base for t in amounts])


def accuracy(model: Any, d: EditDirections, x: Tensor, x_mask: Tensor, code: Tensor,
             amounts: Mapping[str, Sequence[float]], methods: Sequence[str] = METHODS,
             references: tuple[Tensor, Tensor] | None = None) -> list[dict[str, Any]]:
    """One row per (method, attribute): ``slope`` and ``r2`` of the attribute's own channel, and
    ``per_unit`` (3,), the slopes of ΔL*, Δa*, Δb* on the requested amount (least squares with intercept).

    With ``references = (ref, ref_mask)`` (the images ``code`` was encoded from) a row ``"shifted
    reference"`` per attribute is added (:func:`reference_response`).
    """
    rows = []
    for method in [*methods, *(["shifted reference"] if references is not None else [])]:
        for attribute, ts in amounts.items():
            if method == "shifted reference":
                resp = reference_response(model, x, x_mask, *references, attribute, ts)
            else:
                resp = edit_response(model, d, x, x_mask, code, attribute, ts, method)  # (T, N, 3)
            t = np.repeat(np.asarray(ts, dtype=np.float64), resp.shape[1])
            y = resp.reshape(-1, 3)
            design = np.stack([t, np.ones_like(t)], 1)
            coef = np.linalg.lstsq(design, y, rcond=None)[0]  # (2, 3)
            k = ATTRIBUTES.index(attribute)
            resid = y[:, k] - design @ coef[:, k]
            r2 = 1.0 - float(resid.var()) / max(float(y[:, k].var()), 1e-12)
            rows.append({"method": method, "attribute": attribute, "slope": float(coef[0, k]), "r2": r2,
                         "per_unit": coef[0].copy()})
    return rows


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`accuracy`: achieved per requested unit (diagonal 1 and off-diagonal 0 are ideal)."""
    lines = ["| method | edit | slope (1 = exact) | R² | " + " | ".join(f"{c} per unit" for c in _CHANNELS) + " |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{v:+.2f}" for v in r["per_unit"]]
        lines.append(f"| {r['method']} | {r['attribute']} | {r['slope']:.2f} | {r['r2']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def commutativity(model: Any, d: EditDirections, x: Tensor, code: Tensor, x_mask: Tensor,
                  amounts: Mapping[str, float], methods: Sequence[str] = METHODS) -> list[dict[str, Any]]:
    """Edit A then B against B then A, for every pair of attributes in ``amounts`` and every method.

    Returns rows with ``delta_e`` (mean over inputs of eq (12) between the two outputs' mean colours)
    and ``code_gap`` (mean ``‖z_AB − z_BA‖ / ‖z_AB − z‖``).
    """
    names = list(amounts)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for method in methods:
                ab = apply_edits(apply_edits(code, {a: amounts[a]}, d, method), {b: amounts[b]}, d, method)
                ba = apply_edits(apply_edits(code, {b: amounts[b]}, d, method), {a: amounts[a]}, d, method)
                de = delta_e_lab(mean_lab(render(model, x, ab, x_mask), x_mask),
                                 mean_lab(render(model, x, ba, x_mask), x_mask))
                gap = ((ab - ba).double().norm(dim=1) / (ab - code).double().norm(dim=1).clamp_min(1e-12)).mean()
                rows.append({"pair": f"{a} {amounts[a]:+g}, {b} {amounts[b]:+g}", "method": method,
                             "delta_e": float(de.mean()), "code_gap": float(gap)})
    return rows


def commutativity_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`commutativity` in the layout of Aoshima & Matsubara's comparison: one
    row per method, one column per pair of edits, each cell ``ΔE(AB, BA) / code gap`` (0 / 0: they commute)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    cell = {(r["pair"], r["method"]): r for r in rows}
    lines = ["| method | " + " | ".join(pairs) + " |", "|---|" + "---|" * len(pairs)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{cell[p, m]['delta_e']:.2f} / {cell[p, m]['code_gap']:.3f}"
                                              for p in pairs) + " |")
    return "\n".join(lines)


def edit_grid(model: Any, d: EditDirections, x: Tensor, code: Tensor, amounts: Mapping[str, Sequence[float]],
              method: str = "linear", x_mask: Tensor | None = None) -> list[list[Tensor]]:
    """Images for a figure: one row per attribute, one column per amount, for one input ``x (1, 3, H, W)``
    (with its mask ``x_mask`` for a model trained with ``mask_input``)."""
    return [[render(model, x, apply_edits(code, {a: t}, d, method), x_mask)[0] for t in ts]
            for a, ts in amounts.items()]


def describe(rows: list[dict[str, Any]], comm: list[dict[str, Any]]) -> str:
    """Sentences for the book from :func:`accuracy` and :func:`commutativity` rows (Markdown)."""
    slope = {(r["method"], r["attribute"]): r["slope"] for r in rows}
    best = max((r for r in rows if r["method"] in METHODS), key=lambda r: r["slope"])
    parts = [f"The edit that comes closest to its promise is the {best['method']} {best['attribute']} edit: "
             f"{best['slope']:.2f} of the requested change arrives in the output (R² {best['r2']:.2f})."]
    if ("shifted reference", best["attribute"]) in slope:
        ref = slope["shifted reference", best["attribute"]]
        parts.append(f"A reference whose {best['attribute']} really is shifted moves the output by {ref:.2f} "
                     "per unit: " + ("the edit does better than changing the reference." if best["slope"] > ref
                                     else "changing the reference itself gets further."))
    weak = [a for a in ATTRIBUTES if all(slope.get((m, a), 0.0) < 0.2 for m in METHODS)]
    if weak:
        names = weak[0] if len(weak) == 1 else ", ".join(weak[:-1]) + " and " + weak[-1]
        parts.append(f"For {names} neither kind of edit moves the output by a fifth of what is "
                     "asked: the generator barely follows its code along those attributes.")
    gap = {m: max(r["delta_e"] for r in comm if r["method"] == m) for m in dict.fromkeys(r["method"] for r in comm)}
    if "linear" in gap and "rbf" in gap:
        parts.append(f"Linear edits commute (largest ΔE between A-then-B and B-then-A {gap['linear']:.2f}); "
                     f"the RBF walks do not (up to ΔE {gap['rbf']:.2f}).")
    return " ".join(parts)


@torch.no_grad()
def direction_alignment(model: Any, d: EditDirections, ref: Tensor, ref_mask: Tensor, attribute: str = "lightness",
                        amount: float = 10.0) -> dict[str, float]:
    """Mean cosine between the code change of references really shifted by ``amount`` in ``attribute``
    and three directions at their codes: the linear ``w_k``, the plain RBF gradient ``∇f_k`` and the
    covariance-weighted ``Σ ∇f_k`` the RBF walk starts along. ``ref (N, 3, H, W)`` with masks."""
    k = ATTRIBUTES.index(attribute)
    shift = torch.zeros(len(ref), 3)
    shift[:, k] = amount
    code = model.G.encode(model.histogram(ref, ref_mask)).double().cpu()
    moved = model.G.encode(model.histogram(shift_references(ref, ref_mask, shift), ref_mask)).double().cpu()
    grad = rbf_gradient(code, d)[:, k]
    dirs = {"linear": d.linear[k].expand_as(code), "rbf gradient": grad,
            "rbf gradient, covariance metric": grad @ d.whiten @ d.whiten.T}
    cos = torch.nn.functional.cosine_similarity
    return {name: float(cos(v, moved - code).mean()) for name, v in dirs.items()}


def alignment_table(alignment: Mapping[str, Mapping[str, float]], d: EditDirections) -> str:
    """Markdown table of :func:`direction_alignment` per attribute, with the RBF fields' leave-one-out R²."""
    kinds = list(next(iter(alignment.values())))
    lines = ["| attribute | " + " | ".join(f"cosine: {k}" for k in kinds) + " | RBF leave-one-out R² |",
             "|---|" + "---|" * (len(kinds) + 1)]
    for a, cos in alignment.items():
        r2 = float(d.rbf_r2[ATTRIBUTES.index(a)])
        lines.append(f"| {a} | " + " | ".join(f"{cos[k]:.2f}" for k in kinds) + f" | {r2:.2f} |")
    return "\n".join(lines)
