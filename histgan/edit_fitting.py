"""Fitting edit directions from the colour codes ``(N, D)`` of references and their mean foreground
L*a*b* ``(N, 3)`` (:mod:`histgan.edits` gathers both from a run and applies the result):

* :func:`fit_linear` — least squares of the codes on the three attributes together (Voynov & Babenko,
  "Unsupervised discovery of interpretable directions in the GAN latent space");
* :func:`fit_rbf` — an RBF field per attribute (Tzelepis et al., "WarpedGANSpace: Finding non-linear
  RBF paths in GAN latent space"), its width and ridge chosen by leave-one-out error;
* :func:`whitening` — the Cholesky factor of the codes' covariance, the metric of an RBF walk.

All in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from histgan.errors import HistganError

__all__ = ["fit_linear", "fit_rbf", "whitening"]


def fit_linear(codes: Tensor, attrs: Tensor, ridge: float = 1e-12) -> Tensor:
    """Least squares of codes ``(N, D)`` on attributes ``(N, 3)``: ``W (3, D)`` with
    ``z − z̄ ≈ (A − Ā) W``. Row ``k`` is the code change per unit of attribute ``k``, others fixed."""
    if len(codes) < attrs.shape[1] + 2:
        raise HistganError(f"fitting edit directions needs at least {attrs.shape[1] + 2} references, got {len(codes)}")
    a = (attrs - attrs.mean(0)).double()
    z = (codes - codes.mean(0)).double()
    gram = a.T @ a
    gram = gram + ridge * torch.trace(gram) * torch.eye(len(gram), dtype=gram.dtype)
    return torch.linalg.solve(gram, a.T @ z)


def _farthest_points(codes: Tensor, m: int) -> Tensor:
    """``m`` codes spread over the set: start at the one nearest the mean, add the farthest each time."""
    chosen = [int(torch.cdist(codes, codes.mean(0, keepdim=True))[:, 0].argmin())]
    dist = torch.cdist(codes, codes[chosen[0]][None])[:, 0]
    while len(chosen) < min(m, len(codes)):
        chosen.append(int(dist.argmax()))
        dist = torch.minimum(dist, torch.cdist(codes, codes[chosen[-1]][None])[:, 0])
    return codes[chosen]


def _loo_ridge(phi: Tensor, y: Tensor, ridge: float) -> tuple[Tensor, Tensor, float]:
    """Ridge fit of ``y (N,)`` on ``[1, phi]``; returns the coefficients, the leave-one-out residuals
    (``r_i / (1 − H_ii)`` of the hat matrix ``H``: exact for a linear smoother) and the degrees of
    freedom ``trace H``."""
    x = torch.cat([torch.ones(len(phi), 1, dtype=phi.dtype), phi], dim=1)
    reg = ridge * torch.eye(x.shape[1], dtype=x.dtype)
    reg[0, 0] = 0.0  # the bias is not shrunk
    inv = torch.linalg.inv(x.T @ x + reg)
    coef = inv @ x.T @ y
    hat = ((x @ inv) * x).sum(1)
    return coef, (y - x @ coef) / (1.0 - hat).clamp_min(1e-9), float(hat.sum())


def fit_rbf(codes: Tensor, attrs: Tensor, centres: int = 64,
            scales: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0), ridges: tuple[float, ...] = (1e-3, 1e-1, 10.0, 1e3)
            ) -> dict[str, Tensor]:
    """RBF fields ``f_k(z) = b_k + Σ_i α_ki exp(−γ_k ‖z − s_i‖²)`` predicting each attribute.

    Centres ``s_i``: farthest-point sample of the codes. ``γ_k = scale / median ‖s_i − s_j‖²`` and the
    ridge weight on ``α`` are chosen on a grid by the one-standard-error rule (Hastie, Tibshirani &
    Friedman, *The Elements of Statistical Learning*, §7.10): of the fits whose leave-one-out error is
    within one standard error of the best, the one with the fewest degrees of freedom — the smoothest
    field that predicts as well, whose gradient is not a wiggle between neighbouring centres.
    Returns ``centres (M, D)``, ``alpha (3, M)``, ``gamma (3,)``, ``bias (3,)``, ``r2 (3,)`` (leave-one-out).
    """
    codes, attrs = codes.double(), attrs.double()
    s = _farthest_points(codes, centres)
    d2_centres = torch.cdist(s, s).pow(2)
    median = float(d2_centres[d2_centres > 0].median()) if len(s) > 1 else 1.0
    d2 = torch.cdist(codes, s).pow(2)
    out = {k: [] for k in ("alpha", "gamma", "bias", "r2")}
    for k in range(attrs.shape[1]):
        y = attrs[:, k]
        fits = []
        for scale in scales:
            phi = torch.exp(-(scale / median) * d2)
            for ridge in ridges:
                coef, loo, dof = _loo_ridge(phi, y, ridge)
                sq = loo.pow(2)
                fits.append((float(sq.mean()), float(sq.std()) / math.sqrt(len(sq)), dof, scale / median, coef))
        best = min(fits, key=lambda f: f[0])
        err, _, _, gamma, coef = min((f for f in fits if f[0] <= best[0] + best[1]), key=lambda f: f[2])
        out["alpha"].append(coef[1:])
        out["gamma"].append(torch.tensor(gamma, dtype=torch.float64))
        out["bias"].append(coef[0])
        out["r2"].append(torch.tensor(1.0 - err / max(float(y.var(unbiased=False)), 1e-12), dtype=torch.float64))
    return {"centres": s, **{k: torch.stack(v) for k, v in out.items()}}


def whitening(codes: Tensor, ridge: float = 1e-6) -> Tensor:
    """Cholesky factor ``L (D, D)`` of the codes' covariance (plus ``ridge · tr Σ / D`` on the diagonal)."""
    z = codes.double() - codes.double().mean(0)
    cov = z.T @ z / max(len(z) - 1, 1)
    jitter = ridge * float(torch.trace(cov)) / len(cov)
    return torch.linalg.cholesky(cov + jitter * torch.eye(len(cov), dtype=cov.dtype))
