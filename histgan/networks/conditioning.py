"""How the reference's colour enters the generator (paper Fig. 2): the histogram encoder makes the
colour code, FiLM and adaptive residual blocks apply it.

* :class:`HistogramEncoder` — fully-connected layers, reference histogram ``(N, 3, K)`` → colour
  code ``(N, D)``.
* :class:`FiLM` — feature-wise linear modulation by the code (Perez et al. 2018), zero-initialised.
* :class:`AdaResBlock` — a residual block whose instance norms are adaptive (AdaIN, Huang & Belongie 2017).
* :func:`backdrop_descriptor` — seven numbers of what lies *behind* the reference's skin (ours, not the
  paper's): the code's backdrop part, for generators built with ``backdrop=True``.

:class:`histgan.networks.generator.Generator` chooses among them by its ``injection``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from histgan.histogram import bin_width
from histgan.networks.layers import ResBlock

__all__ = ["HistogramEncoder", "histogram_moments", "backdrop_descriptor", "BACKDROP_DIM", "FiLM", "AdaResBlock"]

#: Length of :func:`backdrop_descriptor`: mean R, G, B, their standard deviations, and "present".
BACKDROP_DIM = 7


class HistogramEncoder(nn.Module):
    """Colour code of a reference: ``(N, 3, K)`` histogram → ``(N, D)`` code (paper Fig. 2, "FC").

    The histogram is scaled by ``K`` (a uniform histogram becomes all ones) and flattened, then
    passed through ``Linear → LeakyReLU → Linear → LeakyReLU → Linear``.

    With ``moments=True`` the code also carries, after those ``D`` learnt entries, the histogram's own
    per-channel mean and standard deviation over the bin centres ``μ_k`` (:func:`histogram_moments`):
    six numbers computed, not learnt, so that the reference's mean colour reaches every FiLM and the
    colour head exactly, whatever the encoder has learnt. The code is then ``D + 6`` long
    (:attr:`out_dim`).

    Args:
        bins: bins per channel ``K``.
        code_dim: learnt code length ``D``.
        hidden: width of the two hidden layers (default ``max(64, 2 D)``).
        moments: append the six moments to the code.
    """

    def __init__(self, bins: int, code_dim: int, hidden: int | None = None, moments: bool = False) -> None:
        super().__init__()
        hidden = hidden or max(64, 2 * code_dim)
        self.bins, self.moments = bins, moments
        self.out_dim = code_dim + (6 if moments else 0)
        self.net = nn.Sequential(
            nn.Linear(3 * bins, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, code_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        """``(N, 3, K)`` → ``(N, out_dim)``."""
        if h.dim() != 3 or h.shape[1:] != (3, self.bins):
            raise ValueError(f"histogram must have shape (N, 3, {self.bins}), got {tuple(h.shape)}")
        code = self.net(h.flatten(1) * self.bins)
        return torch.cat([code, histogram_moments(h).to(code.dtype)], dim=1) if self.moments else code


def histogram_moments(h: Tensor) -> Tensor:
    """Per-channel mean and standard deviation of histograms over their bin centres.

    ``h (N, C, K)`` with non-negative entries (not necessarily summing to 1: a soft histogram loses the
    kernel's tails beyond [-1, 1]) over bins of width ``2/K`` on [-1, 1], centres
    ``μ_k = -1 + (2/K)(k + 1/2)``. Returns ``(N, 2C)``: the ``C`` means ``m = Σ h_k μ_k / Σ h_k``, then the
    ``C`` standard deviations ``sqrt(Σ h_k (μ_k - m)² / Σ h_k)``. An empty histogram gives zeros.
    """
    k = h.shape[-1]
    centres = -1 + bin_width(k) * (torch.arange(k, dtype=h.dtype, device=h.device) + 0.5)  # the histogram's own
    mass = h.sum(-1)
    w = h / mass.clamp_min(torch.finfo(h.dtype).tiny).unsqueeze(-1)
    mean = (w * centres).sum(-1)
    var = (w * (centres - mean.unsqueeze(-1)) ** 2).sum(-1)
    return torch.cat([mean, var.clamp_min(0).add(1e-12).sqrt() * (mass > 0)], dim=1)


def backdrop_descriptor(images: Tensor, fg_mask: Tensor | None) -> Tensor:
    """What lies behind the foreground of each image: ``(N, 3, H, W)`` in [-1, 1] → ``(N, 7)``.

    Over the pixels where ``fg_mask == 0`` (the background), each channel's mean ``m_c`` and standard
    deviation ``s_c``, then a 1 ("present"). An image without background pixels, or ``fg_mask=None``
    (no mask, so nothing is known to be background), gives seven zeros: the "no backdrop given" code
    that a generator trained with backdrop dropout has learnt to fill in itself. No gradient is needed
    and nothing is read back from the device.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if fg_mask is None:
        return images.new_zeros(len(images), BACKDROP_DIM)
    bg = (fg_mask == 0).to(images.dtype).expand(-1, 1, -1, -1) if fg_mask.dim() == 4 else None
    if bg is None or bg.shape[0] != images.shape[0] or bg.shape[2:] != images.shape[2:]:
        raise ValueError(f"fg_mask must have shape (N, 1, H, W) matching images {tuple(images.shape)}, "
                         f"got {tuple(fg_mask.shape)}")
    count = bg.sum((2, 3))  # (N, 1)
    present = (count > 0).to(images.dtype)
    mean = (images * bg).sum((2, 3)) / count.clamp_min(1.0)
    var = (((images - mean[:, :, None, None]) ** 2) * bg).sum((2, 3)) / count.clamp_min(1.0)
    return torch.cat([mean, var.clamp_min(0).add(1e-12).sqrt() * present, present], dim=1)


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``(1 + γ(c)) · x + β(c)`` per channel (Perez et al. 2018)."""

    def __init__(self, code_dim: int, ch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(code_dim, 2 * ch)
        nn.init.zeros_(self.proj.weight)  # starts as the identity: the code is learnt in gradually
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.coefficients(code, x.dim())
        return torch.addcmul(beta, x, 1 + gamma)  # one pass over x (forward and backward)

    def coefficients(self, code: Tensor, dim: int = 4) -> tuple[Tensor, Tensor]:
        """``γ(c), β(c)`` shaped ``(N, ch, 1, …)`` to broadcast over a ``dim``-dimensional feature map."""
        gamma, beta = self.proj(code).reshape(len(code), -1, *([1] * (dim - 2))).chunk(2, dim=1)
        return gamma, beta


class AdaResBlock(ResBlock):
    """A residual block whose two instance norms are adaptive (Huang & Belongie 2017, AdaIN): after
    each norm the colour code sets every channel's scale and shift, ``(1 + γ(c)) · x̂ + β(c)``.

    The parameters are :class:`~histgan.networks.layers.ResBlock`'s plus ``film``; with ``γ = β = 0`` (the zero-initialised
    projections) it computes exactly what :class:`~histgan.networks.layers.ResBlock` does.
    """

    def __init__(self, ch: int, norm: str, code_dim: int) -> None:
        super().__init__(ch, norm)
        self.film = nn.ModuleList([FiLM(code_dim, ch), FiLM(code_dim, ch)])

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        b = self.body
        f = torch.relu(self.film[0](b[2](b[1](b[0](x))), code))
        return x + self.film[1](b[6](b[5](b[4](f))), code)
