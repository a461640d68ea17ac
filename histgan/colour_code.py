"""The colour code as a latent space: morphing between references and inverting to a target colour.

A conditioned generator reads a reference only through its colour code ``c = E(h_ref)`` (``(N, D)``,
:meth:`histgan.networks.generator.Generator.encode`), a small vector the user can steer directly:

* **Morphing** — mix the codes of several references with weights ``w`` (non-negative, summing to 1):
  ``c = Σ_r w_r E(h_r)`` (:func:`mix_codes`); or, for comparison, mix the histograms and encode the
  mixture, ``E(Σ_r w_r h_r)`` (:func:`mix_histograms`). :func:`morph_path` renders the frames of
  ``t ↦ ((1 − t), t)`` between two references.
* **Inversion** — for one input, optimise the code itself so that the output's histogram (over the
  input's mask) matches a target histogram (eq (6)), optionally plus ``λ_lab`` times the ΔE of eq (12)
  between the output's mean L*a*b* and a target colour (:func:`refine_codes`). The network is frozen:
  only the code moves (Adam). Each image has its own code and its own loss term, and Adam updates
  every element from that element's gradient alone, so refining a batch with the *sum* of the
  per-image losses takes exactly the steps that refining each image alone would.

Weights are never normalised silently: :func:`mix_weights` rejects negative weights and weights that
do not sum to 1, so a typo cannot extrapolate outside the references' span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from histgan.histogram import histogram_loss
from histgan.losses import masked_histogram, mean_colour_loss
from histgan.networks.generator import mask_kwargs

__all__ = ["WEIGHT_TOLERANCE", "REFINE_LR", "REFINE_LAMBDA_LAB", "mix_weights", "mix_codes", "mix_histograms",
           "per_image_loss", "refine_codes", "Refinement", "check_refine", "steered_code", "morph_path"]

#: How far the weights' sum may be from 1 (round-off of decimal weights such as 0.1 + 0.2 + 0.7).
WEIGHT_TOLERANCE = 1e-6
#: Adam's learning rate on the code (codes of a trained run have entries of about ±0.2; with 0.1 the
#: 200-step refinement of the book's histgan_bi run reached its lowest ΔE among 0.05 and 0.1).
REFINE_LR = 0.1
#: Weight of the mean-colour ΔE term next to eq (6) (ΔE is in L*a*b* units, eq (6) below about 1).
REFINE_LAMBDA_LAB = 0.05


def mix_weights(mix: float | Sequence[float], n_references: int) -> tuple[float, ...]:
    """The weights of ``n_references`` references from ``mix``.

    Args:
        mix: with two references, a number ``t`` in [0, 1] — weights ``(1 − t, t)``, so ``t = 0`` is the
            first reference and ``t = 1`` the second; or one weight per reference, each ≥ 0, summing to 1.
        n_references: how many references are mixed (≥ 1).

    Raises:
        ValueError: ``t`` outside [0, 1], a weight count that differs from ``n_references``, a negative or
            non-finite weight, or weights whose sum is not 1 (within :data:`WEIGHT_TOLERANCE`; they are
            not normalised for you).
    """
    if isinstance(n_references, bool) or not isinstance(n_references, int) or n_references < 1:
        raise ValueError(f"n_references must be a positive integer, got {n_references!r}")
    if isinstance(mix, (int, float)) and not isinstance(mix, bool):
        if n_references != 2:
            raise ValueError(f"mix as one number t needs exactly 2 references, got {n_references}; "
                             "pass one weight per reference instead")
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"mix t must lie in [0, 1] (0: the first reference, 1: the second), got {mix}")
        return (1.0 - float(mix), float(mix))
    weights = tuple(float(w) for w in mix)
    if len(weights) != n_references:
        raise ValueError(f"mix has {len(weights)} weights for {n_references} references; give one per reference")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"mix weights must be finite and non-negative, got {list(weights)}")
    if abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"mix weights must sum to 1 (they are not normalised), got sum {sum(weights):.6g}")
    return weights


def mix_codes(G: nn.Module, histograms: Sequence[Tensor], weights: Sequence[float],
              backdrops: Sequence[Tensor | None] | None = None) -> Tensor:
    """Weighted mean of the references' colour codes, ``Σ_r w_r E(h_r)``.

    Args:
        G: a conditioned :class:`~histgan.networks.generator.Generator`.
        histograms: one ``(N, 3, K)`` histogram batch per reference.
        weights: one weight per reference (checked by :func:`mix_weights`).
        backdrops: for a generator trained with ``backdrop_code``, one backdrop descriptor ``(N, 7)`` (or
            None) per reference, which its code then carries (:meth:`Generator.encode`); None: none given.

    Returns:
        ``(N, D)``; with weights ``(1, 0, …)`` exactly the first reference's code.
    """
    weights = mix_weights(list(weights), len(histograms))
    backdrops = list(backdrops) if backdrops is not None else [None] * len(histograms)
    if len(backdrops) != len(histograms):
        raise ValueError(f"backdrops must have one entry per reference ({len(histograms)}), got {len(backdrops)}")
    codes = [G.encode(h, bd) for h, bd in zip(histograms, backdrops)]
    return sum((w * c for w, c in zip(weights[1:], codes[1:])), weights[0] * codes[0])


def mix_histograms(histograms: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted mean of histograms, ``Σ_r w_r h_r``: ``R × (N, 3, K)`` → ``(N, 3, K)``.

    The mixture of two one-peaked histograms has two peaks (a cross-fade of two colours), while the
    code mixture is whatever the encoder and generator make of a point between two codes.
    """
    weights = mix_weights(list(weights), len(histograms))
    return sum((w * h for w, h in zip(weights[1:], histograms[1:])), weights[0] * histograms[0])


def per_image_loss(out: Tensor, x_mask: Tensor | None, h_target: Tensor, bins: int, bandwidth: float | None,
                   lab_target: Tensor | None = None, lambda_lab: float = 0.0) -> Tensor:
    """Each image's refinement loss: eq (6) of its output's histogram (over ``x_mask``) against its
    target, plus ``lambda_lab`` × the ΔE of eq (12) between its mean L*a*b* (over ``x_mask``) and
    ``lab_target``. ``out (N, 3, H, W)``, ``h_target (N, 3, K)``, ``lab_target (N, 3)`` → ``(N,)``.
    """
    h_fake = masked_histogram(out, x_mask, bins, bandwidth)
    loss = torch.stack([histogram_loss(h_fake[i : i + 1], h_target[i : i + 1]) for i in range(len(out))])
    if lambda_lab and lab_target is not None:
        loss = loss + lambda_lab * mean_colour_loss(out, x_mask, lab_target)
    return loss


@dataclass
class Refinement:
    """What :func:`refine_codes` returns."""

    code: Tensor  # (N, D) the refined codes after the last step
    losses: Tensor  # (steps + 1, N) each image's loss before every step and after the last one
    codes: dict[int, Tensor] = field(default_factory=dict)  # step → (N, D) codes after that many steps
    seconds: float = 0.0  # wall time of the optimisation


def refine_codes(G: nn.Module, x: Tensor, code: Tensor, h_target: Tensor, steps: int, *, lr: float = REFINE_LR,
                 x_mask: Tensor | None = None, bins: int = 32, bandwidth: float | None = None,
                 lab_target: Tensor | None = None, lambda_lab: float = 0.0,
                 record: Sequence[int] = ()) -> Refinement:
    """Test-time optimisation of colour codes, the generator frozen (Adam on the codes only).

    Minimises ``Σ_n loss_n(G(x_n, code=c_n))`` (:func:`per_image_loss`) over ``c``. The sum of
    independent per-image terms gives every ``c_n`` the gradient of its own term, and Adam's update is
    element-wise, so a batch refines exactly as its images would one by one (up to float round-off).
    The network's parameters are never updated nor given gradients (``torch.autograd.grad`` on the codes).

    Args:
        G: a conditioned :class:`~histgan.networks.generator.Generator` (put in eval mode here).
        x: inputs ``(N, 3, H, W)`` in [-1, 1]. code: starting codes ``(N, D)`` (e.g. ``G.encode(h_ref)``).
        h_target: target histograms ``(N, 3, K)`` (e.g. of the references over their masks).
        steps: Adam steps (≥ 0). lr: Adam's learning rate.
        x_mask: the inputs' masks ``(N, 1, H, W)``: the histogram and mean colour are taken there.
        bins, bandwidth: the histogram's ``K`` and ``B`` (the model's, ``config.bins``, ``config.bandwidth``).
        lab_target: target mean L*a*b* ``(N, 3)`` for the ΔE term; lambda_lab: its weight (0: none).
        record: step counts after which to keep a copy of the codes (in :attr:`Refinement.codes`).

    Returns:
        a :class:`Refinement`.
    """
    import time

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer (0: no refinement), got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    G.eval()
    start = time.perf_counter()
    c = code.detach().clone().float().requires_grad_(True)
    opt = torch.optim.Adam([c], lr=lr)
    losses, kept = [], {0: c.detach().clone()} if 0 in record else {}
    with torch.enable_grad():
        for step in range(steps + 1):
            per = per_image_loss(G(x, code=c, **mask_kwargs(G, x_mask)), x_mask, h_target, bins, bandwidth,
                                 lab_target, lambda_lab)
            losses.append(per.detach())
            if step == steps:
                break
            (grad,) = torch.autograd.grad(per.sum(), [c])
            c.grad = grad
            opt.step()
            if step + 1 in record:
                kept[step + 1] = c.detach().clone()
    return Refinement(c.detach(), torch.stack(losses), kept, time.perf_counter() - start)


def check_refine(refine: int) -> int:
    """``refine`` if it is a valid number of refinement steps (an integer ≥ 0), else ValueError."""
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be a non-negative number of steps (0: no refinement), got {refine!r}")
    return refine


def steered_code(model, x: Tensor, histograms: Sequence[Tensor], weights: Sequence[float] | None = None,
                 refine: int = 0, x_mask: Tensor | None = None, lab_targets: Sequence[Tensor | None] | None = None,
                 lambda_lab: float = REFINE_LAMBDA_LAB, backdrops: Sequence[Tensor | None] | None = None) -> Tensor:
    """The colour code a user asked for: the references' codes mixed, then optionally refined.

    Args:
        model: a :class:`~histgan.inference.Translator` (its ``G``, ``config`` and ``device`` are used).
        x: inputs ``(N, 3, H, W)``. histograms: one ``(1 | N, 3, K)`` histogram per reference.
        weights: one per reference (:func:`mix_weights`); None for a single reference.
        refine: Adam steps of :func:`refine_codes` towards the mixed histogram (0: none).
        x_mask: the inputs' masks for the refinement (None: whole images).
        lab_targets: each reference's mean L*a*b* ``(1 | N, 3)`` or None; when all are given, their
            weighted mean is the ΔE term's target, else only eq (6) is refined.
        lambda_lab: weight of the ΔE term.
        backdrops: each reference's backdrop descriptor ``(1 | N, 7)`` or None (:func:`mix_codes`).

    Returns:
        ``(N, D)`` codes on the model's device.
    """
    check_refine(refine)
    weights = mix_weights(list(weights) if weights is not None else [1.0], len(histograms))
    x = x.to(model.device).float()
    x_mask = None if x_mask is None else x_mask.to(model.device)
    hs = [h.to(model.device).float().expand(len(x), -1, -1) for h in histograms]
    bds = None if backdrops is None else [None if b is None else b.to(model.device).float().expand(len(x), -1)
                                          for b in backdrops]
    with torch.no_grad():
        code = mix_codes(model.G, hs, weights, bds)
    if refine == 0:
        return code
    labs = list(lab_targets) if lab_targets is not None else [None]
    lab = None if any(v is None for v in labs) else sum(w * v.to(model.device).float() for w, v in zip(weights, labs))
    return refine_codes(model.G, x, code, mix_histograms(hs, weights), refine, x_mask=x_mask,
                        bins=model.config.bins, bandwidth=model.config.bandwidth, lab_target=lab,
                        lambda_lab=lambda_lab if lab is not None else 0.0).code


@torch.no_grad()
def morph_path(G: nn.Module, x: Tensor, h_a: Tensor, h_b: Tensor, ts: Sequence[float], mode: str = "code",
               backdrops: tuple[Tensor, Tensor] | None = None, x_mask: Tensor | None = None) -> Tensor:
    """Frames of a morph from reference ``a`` (``t = 0``) to ``b`` (``t = 1``).

    Args:
        G: a conditioned generator. x: inputs ``(N, 3, H, W)``.
        h_a, h_b: the two references' histograms ``(N, 3, K)`` (or ``(1, 3, K)`` for all inputs).
        ts: the mixing fractions, each in [0, 1].
        mode: ``"code"`` (:func:`mix_codes`) or ``"histogram"`` (:func:`mix_histograms`, then encode).
        backdrops: the two references' backdrop descriptors ``(N | 1, 7)`` for a generator trained with
            ``backdrop_code`` (mixed with the same weights in either mode); None: none given.
        x_mask: the inputs' masks ``(N, 1, H, W)``, for a generator trained with ``mask_input``.

    Returns:
        ``(T, N, 3, H, W)`` in [-1, 1].
    """
    if mode not in ("code", "histogram"):
        raise ValueError(f"mode must be 'code' or 'histogram', got {mode!r}")
    h_a, h_b = (h.expand(len(x), -1, -1) for h in (h_a, h_b))
    bds = None if backdrops is None else [b.expand(len(x), -1) for b in backdrops]
    frames = []
    for t in ts:
        w = mix_weights(float(t), 2)
        if mode == "code":
            code = mix_codes(G, [h_a, h_b], w, bds)
        else:
            code = G.encode(mix_histograms([h_a, h_b], w), None if bds is None else w[0] * bds[0] + w[1] * bds[1])
        frames.append(G(x, code=code, **mask_kwargs(G, x_mask)).clamp(-1, 1))
    return torch.stack(frames)
