"""The kernel ``K`` of the kernel density estimate, eq (2) of the book's histogram page, and its integral.

Eq (1) places a kernel on every pixel; eq (4) integrates it over a bin, so the histogram needs the
kernel's cumulative distribution function at the bin edges. A :class:`Kernel` is the few functions of
the standardised distance ``u = (z − g) / B`` that the histogram code calls, each in one place:

* ``cdf(u)`` — ``∫_{−∞}^u K``, the soft step of eq (4) (the forward pass);
* ``density(u)`` — ``K(u) = d cdf / du`` (the backward pass);
* ``tail(eps)`` — a distance ``t`` with ``1 − cdf(t) ≤ eps``: how far from a pixel the histogram has
  to look (:func:`histgan.histogram.window_half_width`);
* ``cdf_``, ``density_`` and ``scaled_density_`` — the same numbers for the windowed histogram's
  work tensors (:mod:`histgan.histogram_window`), which they may overwrite: a kernel that can work
  in place (the logistic) saves an allocation per block, and fuses ``g · K(u)`` into one pass.

:data:`LOGISTIC` is the paper's (Deephist's) kernel, ``K = σ′``, the default of every histogram
function; :data:`GAUSSIAN` is the standard normal. Both are symmetric with unit area, so
``cdf(−u) = 1 − cdf(u)``. Changing the kernel is one argument:
``soft_histogram(images, kernel=GAUSSIAN)``.
"""

from __future__ import annotations

import math
import statistics

import torch
from torch import Tensor

__all__ = ["Kernel", "Logistic", "Gaussian", "LOGISTIC", "GAUSSIAN"]


class Kernel:
    """A symmetric kernel of unit area: subclasses define ``cdf``, ``density`` and ``tail``.

    The in-place forms (trailing ``_``) give the same values and may overwrite their argument ``u``;
    by default they compute out of place.
    """

    name = "kernel"  # shown in plots and error messages
    __slots__ = ()

    def cdf(self, u: Tensor) -> Tensor:
        """``∫_{−∞}^u K``, elementwise; any shape -> same shape."""
        raise NotImplementedError

    def density(self, u: Tensor) -> Tensor:
        """``K(u) = d cdf / du``, elementwise; any shape -> same shape."""
        raise NotImplementedError

    def tail(self, eps: float) -> float:
        """A distance ``t > 0`` with ``1 − cdf(t) ≤ eps``, within 10 % of the least such ``t``; ``0 < eps < 1/2``."""
        raise NotImplementedError

    def cdf_(self, u: Tensor) -> Tensor:
        """``cdf(u)``; may overwrite ``u``."""
        return self.cdf(u)

    def density_(self, u: Tensor) -> Tensor:
        """``density(u)``; may overwrite ``u``."""
        return self.density(u)

    def scaled_density_(self, g: Tensor, u: Tensor) -> Tensor:
        """``g · density(u)`` elementwise (the backward's product); may overwrite ``u``."""
        return g * self.density(u)

    def __repr__(self) -> str:
        return f"<{self.name} kernel>"


def _check_eps(eps: float) -> float:
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 1/2) (a tail mass), got {eps!r}")
    return eps


class Logistic(Kernel):
    """The kernel of eq (2), ``K(u) = σ′(u) = σ(u) σ(−u)``, and its integral, the logistic sigmoid ``σ``."""

    name = "logistic"
    __slots__ = ()

    def cdf(self, u: Tensor) -> Tensor:
        return torch.sigmoid(u)  # σ(u) = 1 / (1 + e^{−u})

    def density(self, u: Tensor) -> Tensor:
        s = torch.sigmoid(u)
        return s * (1 - s)  # eq (2): σ(u) σ(−u) = σ(u) (1 − σ(u))

    def tail(self, eps: float) -> float:
        # ln(1/eps): 1 − σ(t) = σ(−t) = eps / (1 + eps) < eps, while σ(−0.9 t) ≈ eps^0.9
        return -math.log(_check_eps(eps))

    def cdf_(self, u: Tensor) -> Tensor:
        return u.sigmoid_()

    def density_(self, u: Tensor) -> Tensor:
        s = u.sigmoid_()
        return s.mul_(1 - s)

    def scaled_density_(self, g: Tensor, u: Tensor) -> Tensor:
        return torch.ops.aten.sigmoid_backward(g, u.sigmoid_())  # g · σ(1 − σ) in one pass


class Gaussian(Kernel):
    """The standard normal: ``K(u) = φ(u) = e^{−u²/2} / √(2π)``, its integral ``Φ``."""

    name = "Gaussian"
    __slots__ = ()

    def cdf(self, u: Tensor) -> Tensor:
        return 0.5 * torch.special.erfc(-u / math.sqrt(2.0))  # Φ(u), accurate far into the lower tail

    def density(self, u: Tensor) -> Tensor:
        return torch.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)

    def tail(self, eps: float) -> float:
        # the exact quantile −Φ⁻¹(eps): 1 − Φ(t) = eps up to float64 round-off (a few ulps)
        return -statistics.NormalDist().inv_cdf(_check_eps(eps))


#: The paper's kernel, the default of every histogram function.
LOGISTIC = Logistic()
#: The standard normal kernel: ``soft_histogram(images, kernel=GAUSSIAN)``.
GAUSSIAN = Gaussian()
