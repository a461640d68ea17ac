"""The sRGB transfer curve (IEC 61966-2-1): encoded values ↔ linear light, one definition for the package.

The data generator (:mod:`histgan.data`, numpy) decodes skin and background colours with it and encodes
its renders; the colour metrics (:mod:`histgan.colour_difference`, torch) decode images on the way to
CIE L*a*b*, with gradients where the colour-code refinement needs them. Both call the two functions
here, which take numpy arrays or torch tensors. This module imports numpy only, so the data generator
never loads torch::

    linear = u / 12.92                          if u <= 12.92 × 0.0031308
             ((u + 0.055) / 1.055) ** 2.4       otherwise

    encoded = 12.92 v                           if v <= 0.0031308
              1.055 v ** (1 / 2.4) − 0.055      otherwise

The encoded end of the linear segment is colour-science's 12.92 × 0.0031308 = 0.040449936 (the
standard rounds it to 0.04045), so that encoding and decoding meet at one point.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

import numpy as np

__all__ = ["srgb_to_linear", "linear_to_srgb"]

ArrayOrTensor = TypeVar("ArrayOrTensor")
#: Slope of the linear segment near black.
_SLOPE = 12.92
#: Where the linear segment ends, in linear light.
_LINEAR_KNEE = 0.0031308
#: Where it ends in encoded values.
_KNEE = _SLOPE * _LINEAR_KNEE


def _ops(x: Any) -> tuple[Callable, Callable]:
    """``(where, at_least)`` of torch for a tensor, of numpy otherwise (a tensor means torch is loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch.where, torch.clamp_min
    return np.where, np.maximum


def srgb_to_linear(u: ArrayOrTensor) -> ArrayOrTensor:
    """sRGB decoding, elementwise: encoded values in [0, 1] → linear light in [0, 1].

    Arrays (anything numpy reads) are decoded in float64; tensors keep their dtype and device and are
    decoded out of place, so gradients flow (the power branch is taken at ``max(u, knee)``, which keeps
    it and its gradient finite where it is not chosen).
    """
    where, at_least = _ops(u)
    if where is np.where:
        u = np.asarray(u, dtype=np.float64)
    return where(u <= _KNEE, u / _SLOPE, ((at_least(u, _KNEE) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: ArrayOrTensor) -> ArrayOrTensor:
    """sRGB encoding, elementwise: linear light → encoded values in [0, 1]; the inverse of
    :func:`srgb_to_linear`. Values outside [0, 1] are clipped first; tensors are encoded out of place."""
    where, at_least = _ops(v)
    v = np.clip(v, 0.0, 1.0) if where is np.where else v.clamp(0.0, 1.0)
    return where(v <= _LINEAR_KNEE, _SLOPE * v, 1.055 * at_least(v, _LINEAR_KNEE) ** (1.0 / 2.4) - 0.055)
