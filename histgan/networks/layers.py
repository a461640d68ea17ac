"""Layers shared by the generator and the discriminator: a normalisation chosen by name and CycleGAN's
residual block (Zhu et al., *Unpaired image-to-image translation using cycle-consistent adversarial
networks*)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["norm_layer", "ResBlock"]


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"instance"`` (no affine parameters), ``"batch"`` or ``"none"`` normalisation of ``channels``."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


class ResBlock(nn.Module):
    """``x + conv(relu(norm(conv(x))))`` with reflection padding (CycleGAN's residual block)."""

    def __init__(self, ch: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm_layer(norm, ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), norm_layer(norm, ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
