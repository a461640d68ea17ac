"""The kernel ``K`` of the kernel density estimate, eq (2) of the book's histogram page, and its integral.

Eq (1) places a kernel on every pixel; eq (4) integrates it over a bin, so the histogram needs the
kernel's cumulative distribution function at the bin edges. A :class:`Kernel` is the few functions of
the standardised distance ``u = (z − g) / B`` that the histogram code calls, each in one place:

* ``cdf(u)`` — ``∫_{−∞}^u K``, the soft step of eq (4) (the forward pass);
* ``density(u)`` — ``K(u) = d cdf / du`` (the backward pass);
* ``scaled_density(g, u)`` — ``g · K(u)`` elementwise, the backward's product (fused where it can be);
* ``tail(eps)`` — a distance ``t`` with ``1 − cdf(t) ≤ eps``: how far from a pixel the histogram has
  to look (:func:`histgan.histogram.window_half_width`).

:data:`LOGISTIC` is the paper's (Deephist's) kernel, ``K = σ′``, the default of every histogram
function; :data:`GAUSSIAN` is the standard normal. Both are symmetric with unit area, so
``cdf(−u) = 1 − cdf(u)``. Changing the kernel is one argument:
``soft_histogram(images, kernel=GAUSSIAN)``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

__all__ = ["Kernel", "LOGISTIC", "GAUSSIAN", "logistic_cdf", "logistic_density", "gaussian_cdf", "gaussian_density"]


@dataclass(frozen=True)
class Kernel:
    """A symmetric kernel of unit area, given by the functions eqs (2)–(4) need (see the module docstring)."""

    name: str  # shown in plots and error messages
    cdf: Callable[[Tensor], Tensor]  # u -> ∫_{-∞}^u K, the soft step of eq (4); returns a new tensor
    density: Callable[[Tensor], Tensor]  # u -> K(u) = d cdf / du, eq (2) for the logistic
    scaled_density: Callable[[Tensor, Tensor], Tensor]  # (g, u) -> g · K(u), elementwise
    tail: Callable[[float], float]  # eps -> t > 0 with 1 - cdf(t) <= eps, for 0 < eps < 1/2


def _check_eps(eps: float) -> float:
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 1/2) (a tail mass), got {eps!r}")
    return eps


# --------------------------------------------------------------------------------------------------
# the logistic kernel of eq (2)


def logistic_cdf(u: Tensor) -> Tensor:
    """``σ(u) = 1 / (1 + e^{−u})``, the integral of the kernel of eq (2); any shape -> same shape."""
    return torch.sigmoid(u)


def logistic_density(u: Tensor) -> Tensor:
    """The kernel of eq (2), ``K(u) = σ′(u) = σ(u) σ(−u) = σ(u) (1 − σ(u))``; any shape -> same shape."""
    s = torch.sigmoid(u)
    return s * (1 - s)


def _logistic_scaled_density(g: Tensor, u: Tensor) -> Tensor:
    """``g · σ(u)(1 − σ(u))`` in one pass: aten's sigmoid backward (no ``σ(1 − σ)`` tensor is stored)."""
    return torch.ops.aten.sigmoid_backward(g, torch.sigmoid(u))


def _logistic_tail(eps: float) -> float:
    """``ln(1/eps)``: ``1 − σ(t) = σ(−t) = eps / (1 + eps) < eps`` there, while ``σ(−0.9 t) > eps``."""
    return -math.log(_check_eps(eps))


LOGISTIC = Kernel("logistic", logistic_cdf, logistic_density, _logistic_scaled_density, _logistic_tail)

# --------------------------------------------------------------------------------------------------
# the Gaussian kernel


def gaussian_cdf(u: Tensor) -> Tensor:
    """``Φ(u) = erfc(−u / √2) / 2``, the standard normal CDF (accurate far into the lower tail)."""
    return 0.5 * torch.special.erfc(-u / math.sqrt(2.0))


def gaussian_density(u: Tensor) -> Tensor:
    """``φ(u) = exp(−u² / 2) / √(2π)``, the standard normal density; any shape -> same shape."""
    return torch.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)


def _gaussian_scaled_density(g: Tensor, u: Tensor) -> Tensor:
    return g * gaussian_density(u)


def _gaussian_tail(eps: float) -> float:
    """``−Φ⁻¹(eps)``, the exact quantile: ``1 − Φ(t) = eps`` up to float64 round-off (a few ulps)."""
    return -statistics.NormalDist().inv_cdf(_check_eps(eps))


GAUSSIAN = Kernel("Gaussian", gaussian_cdf, gaussian_density, _gaussian_scaled_density, _gaussian_tail)
