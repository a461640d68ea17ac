"""An exponential moving average of a network's weights during training, and loading it into the
network (Yazıcı et al. 2019, *The unusual effectiveness of averaging in GAN training*)."""

from __future__ import annotations

import torch
from torch import nn

from histgan.networks.spectral_norm import refresh_spectral_norm

__all__ = ["WeightAverage", "load_average"]


class WeightAverage:
    """An exponential moving average of a network's weights (Yazıcı et al. 2019, *The unusual
    effectiveness of averaging in GAN training*): after every optimiser step
    ``ā ← β_t ā + (1 − β_t) w`` for each parameter, with ``β_t = min(β, (1 + t) / (10 + t))`` so that
    the random initial weights are forgotten within the first steps. The spectral-norm power-iteration
    vectors are not averaged (an average of unit vectors is not one): :func:`refresh_spectral_norm`
    recomputes them for the averaged weights when the average is loaded.

    All updates stay on the device (one fused ``lerp`` per step, no host synchronisation).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay, self.updates = float(decay), 0
        self.names = [n for n, p in module.named_parameters()]
        self.average = [p.detach().clone() for p in module.parameters()]

    def update(self, module: nn.Module) -> None:
        """One averaging step with ``module``'s current parameters (same structure as at creation)."""
        self.updates += 1
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, [p.detach() for p in module.parameters()], 1.0 - beta)

    def state_dict(self) -> dict:
        """``{"updates", "params": {name: tensor}}`` (checkpoint-safe)."""
        return {"updates": self.updates, "params": dict(zip(self.names, self.average))}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (e.g. on resume)."""
        self.updates = int(state["updates"])
        for a, n in zip(self.average, self.names):
            a.copy_(state["params"][n])


def load_average(module: nn.Module, average: dict) -> nn.Module:
    """Put a :meth:`WeightAverage.state_dict`'s averaged parameters into ``module`` and refresh its
    spectral norms for them (:func:`refresh_spectral_norm`). Returns ``module``."""
    params = dict(module.named_parameters())
    missing = sorted(set(params) - set(average["params"]))
    if missing:
        raise ValueError(f"the weight average lacks parameters {missing[:3]}{'...' if len(missing) > 3 else ''}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(average["params"][n])
    return refresh_spectral_norm(module)
