"""The discriminators ``D_x`` and ``D_y`` of the paper's Fig. 1: PatchGAN (Isola et al. 2017, *Image-to-image
translation with conditional adversarial networks*), logits per overlapping patch."""

from __future__ import annotations

from torch import Tensor, nn

from histgan.networks.layers import norm_layer

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """PatchGAN: ``(N, 3, H, W)`` → logits ``(N, 1, H', W')``, one per overlapping patch.

    ``d_layers`` stride-2 4×4 convs (widths ``ndf · 2^i``, capped at ``8 ndf``), then a stride-1
    4×4 conv and a 1-channel 4×4 conv. ``d_layers = 3`` has the classic 70×70 receptive field at
    256²; ``d_layers = 2`` (34×34) suits 64² images. No norm on the first layer (pix2pix).

    Args:
        ndf: channels of the first conv.
        d_layers: number of stride-2 layers.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
    """

    def __init__(self, ndf: int = 32, d_layers: int = 2, norm: str = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, d_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < d_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), norm_layer(norm, out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` → ``(N, 1, H', W')`` logits."""
        return self.net(x)
