"""Spectral normalisation (Miyato et al. 2018, *Spectral normalization for generative adversarial
networks*) of the networks' conv and linear layers, through
``torch.nn.utils.parametrizations.spectral_norm``: applying it, and refreshing its power-iteration
vectors after the weights were replaced (a loaded weight average)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from histgan.networks.conditioning import FiLM

__all__ = ["apply_spectral_norm", "refresh_spectral_norm", "left_out"]


def left_out(module: nn.Module, exclude: Iterable[nn.Module] = ()) -> set[int]:
    """``id``s of the layers in ``module`` that neither spectral norm nor CycleGAN's init touch: FiLM
    projections (they start at zero, σ = 0, and only scale and shift features) and every layer inside
    the modules of ``exclude`` (e.g. the histogram encoder, see :attr:`histgan.config.TrainConfig.encoder_sn`)."""
    skip = {id(m.proj) for m in module.modules() if isinstance(m, FiLM)}
    return skip | {id(sub) for m in exclude for sub in m.modules()}


def apply_spectral_norm(module: nn.Module, exclude: Iterable[nn.Module] = ()) -> nn.Module:
    """Spectral-normalise the weight of every ``Conv2d`` and ``Linear`` in ``module`` (in place).

    The layers of :func:`left_out` (FiLM projections, and everything inside ``exclude``) are not.

    Each weight ``W`` is used as ``W / σ(W)``, ``σ`` the largest singular value estimated by one
    power iteration per training forward. Returns ``module``.
    """
    skip = left_out(module, exclude)
    for sub in list(module.modules()):
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and id(sub) not in skip:
            _spectral_norm(sub)
    return module


@torch.no_grad()
def refresh_spectral_norm(module: nn.Module, iterations: int = 30) -> nn.Module:
    """Run ``iterations`` power iterations for every spectral-normalised weight of ``module``, so that
    its stored singular vectors (and ``σ``) belong to the weights it holds now. Returns ``module``."""
    from torch.nn.utils import parametrize

    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            for p in sub.parametrizations.weight:
                if hasattr(p, "_power_method"):
                    p._power_method(p._reshape_weight_to_matrix(sub.parametrizations.weight.original), iterations)
    return module
