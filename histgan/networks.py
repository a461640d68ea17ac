"""The networks of the paper's Fig. 1–2: histogram encoder, conditioned generator, PatchGAN.

* :class:`HistogramEncoder` — fully-connected layers, reference histogram ``(N, 3, K)`` → colour
  code ``(N, D)``.
* :class:`Generator` — encoder (stride-2 convs) → middle (residual blocks) → decoder (upsampling),
  the colour code injected at the middle layer by concatenation, by FiLM in the decoder, or both.
  With ``code_dim=0`` it is the plain CycleGAN generator (same class, conditioning off).
* :class:`Discriminator` — PatchGAN (Isola et al. 2017): logits per overlapping patch.

Spectral normalisation (Miyato et al. 2018) is applied by :func:`apply_spectral_norm` through
``torch.nn.utils.parametrizations.spectral_norm`` on every conv and linear layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = ["HistogramEncoder", "Generator", "Discriminator", "apply_spectral_norm", "build_models", "WeightAverage",
           "load_average", "refresh_spectral_norm"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral-normalise the weight of every ``Conv2d`` and ``Linear`` in ``module`` (in place).

    FiLM projections are left out: they start at zero (σ = 0) and only scale and shift features.

    Each weight ``W`` is used as ``W / σ(W)``, ``σ`` the largest singular value estimated by one
    power iteration per training forward. Returns ``module``.
    """
    film = {id(m.proj) for m in module.modules() if isinstance(m, _FiLM)}
    for sub in list(module.modules()):
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and id(sub) not in film:
            _spectral_norm(sub)
    return module


class HistogramEncoder(nn.Module):
    """Colour code of a reference: ``(N, 3, K)`` histogram → ``(N, D)`` code (paper Fig. 2, "FC").

    The histogram is scaled by ``K`` (a uniform histogram becomes all ones) and flattened, then
    passed through ``Linear → LeakyReLU → Linear → LeakyReLU → Linear``.

    Args:
        bins: bins per channel ``K``.
        code_dim: code length ``D``.
        hidden: width of the two hidden layers (default ``max(64, 2 D)``).
    """

    def __init__(self, bins: int, code_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(64, 2 * code_dim)
        self.bins = bins
        self.net = nn.Sequential(
            nn.Linear(3 * bins, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, code_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        """``(N, 3, K)`` → ``(N, D)``."""
        if h.dim() != 3 or h.shape[1:] != (3, self.bins):
            raise ValueError(f"histogram must have shape (N, 3, {self.bins}), got {tuple(h.shape)}")
        return self.net(h.flatten(1) * self.bins)


class _ResBlock(nn.Module):
    """``x + conv(relu(norm(conv(x))))`` with reflection padding (CycleGAN's residual block)."""

    def __init__(self, ch: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(norm, ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(norm, ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _FiLM(nn.Module):
    """Feature-wise linear modulation: ``(1 + γ(c)) · x + β(c)`` per channel (Perez et al. 2018)."""

    def __init__(self, code_dim: int, ch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(code_dim, 2 * ch)
        nn.init.zeros_(self.proj.weight)  # starts as the identity: the code is learnt in gradually
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.proj(code).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + gamma) + beta


class _AdaResBlock(_ResBlock):
    """A residual block whose two instance norms are adaptive (Huang & Belongie 2017, AdaIN): after
    each norm the colour code sets every channel's scale and shift, ``(1 + γ(c)) · x̂ + β(c)``.

    The parameters are :class:`_ResBlock`'s plus ``film``; with ``γ = β = 0`` (the zero-initialised
    projections) it computes exactly what :class:`_ResBlock` does.
    """

    def __init__(self, ch: int, norm: str, code_dim: int) -> None:
        super().__init__(ch, norm)
        self.film = nn.ModuleList([_FiLM(code_dim, ch), _FiLM(code_dim, ch)])

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        b = self.body
        f = torch.relu(self.film[0](b[2](b[1](b[0](x))), code))
        return x + self.film[1](b[6](b[5](b[4](f))), code)


class Generator(nn.Module):
    """ResNet (or U-Net) encoder–decoder generator with an optional colour code (paper Fig. 2).

    ``x (N, 3, H, W)`` → 7×7 conv → ``n_down`` stride-2 convs → [inject] → ``n_blocks`` residual
    blocks → ``n_down`` × (nearest upsampling, 3×3 conv, norm, [FiLM], ReLU) → 7×7 conv → tanh.
    Upsampling is resize-then-convolve, not a transposed convolution (Odena, Dumoulin & Olah 2016:
    strided transposed convolutions leave checkerboard artefacts).

    Injection (when ``code_dim > 0``):

    * ``"concat"`` — the code is tiled over the middle feature map, concatenated, and a 3×3 conv
      maps back to the middle width (the paper's "inject into the middle layer").
    * ``"film"`` — after each decoder normalisation, per-channel scale and shift from the code, so
      the decoder's instance norms cannot wash the colour out.
    * ``"concat+film"`` — both, the default. Measured (``histgan_bi``, ``cpu`` preset, 1,000 steps,
      synthetic 64² data, 16 × 16 test pairs, one seed): mean ΔE concat 7.2, film 4.9, both 4.2
      (plain CycleGAN 29.1); luminance correlation with the input inside the mask 0.55 / 0.75 / 0.61.
      Both gives the lowest colour error; FiLM alone keeps more shading (the paper's trade-off).
    * ``"adain"`` — adaptive instance normalisation (Huang & Belongie 2017, the mechanism of fast
      arbitrary style transfer): the code sets every channel's scale and shift after *every* instance
      norm of the residual blocks and of the decoder (``(1 + γ(c)) · x̂ + β(c)``), not only the
      decoder's. With ``γ = β = 0`` the network is the unconditioned one.

    Architecture (``arch``):

    * ``"resnet"`` — CycleGAN's generator, as above.
    * ``"unet"`` — the same with U-Net skip connections (Ronneberger et al. 2015; pix2pix, Isola
      et al. 2017): each decoder level concatenates the encoder's feature map of its resolution to its
      upsampled features and a 3×3 conv fuses them, before the norm and the colour code's FiLM. Fine
      detail can bypass the bottleneck; so can the input's colour, which the code then has to override.

    Args:
        ngf: channels after the first conv; doubles with every downsampling.
        n_down: number of stride-2 downsamplings (the network stride is ``2 ** n_down``).
        n_blocks: residual blocks in the middle.
        code_dim: colour-code length ``D``; 0 = unconditioned (plain CycleGAN generator).
        bins: histogram bins ``K`` the encoder reads (ignored when ``code_dim == 0``).
        injection: ``"concat"``, ``"film"``, ``"concat+film"`` or ``"adain"``.
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        arch: ``"resnet"`` or ``"unet"``.
        padding: how the 3×3 convs of the encoder, the injection, the U-Net fusion and the decoder pad
            their borders: ``"zeros"`` (CycleGAN's) or ``"reflect"`` (as the 7×7 and residual convs
            already do). Zero padding makes border pixels see a darker, code-free surround, and at
            64² a 16² middle map's border row becomes a 4-pixel frame of the output.
    """

    def __init__(self, ngf: int = 32, n_down: int = 2, n_blocks: int = 4, code_dim: int = 0, bins: int = 32,
                 injection: str = "concat+film", norm: str = "instance", arch: str = "resnet",
                 padding: str = "zeros") -> None:
        super().__init__()
        if injection not in ("concat", "film", "concat+film", "adain"):
            raise ValueError(f"injection must be 'concat', 'film', 'concat+film' or 'adain', got {injection!r}")
        if arch not in ("resnet", "unet"):
            raise ValueError(f"arch must be 'resnet' or 'unet', got {arch!r}")
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"padding must be 'zeros' or 'reflect', got {padding!r}")
        self.padding = padding
        conv3 = lambda cin, cout, stride=1: nn.Conv2d(cin, cout, 3, stride=stride, padding=1,  # noqa: E731
                                                      padding_mode=padding)
        self.code_dim, self.injection, self.stride, self.arch = code_dim, injection, 2**n_down, arch
        self.encoder_hist = HistogramEncoder(bins, code_dim) if code_dim > 0 else None
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), _norm(norm, ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_down):
            layers += [conv3(ch, ch * 2, 2), _norm(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        self.down = nn.Sequential(*layers)
        use_concat = code_dim > 0 and "concat" in injection
        self.inject = nn.Sequential(conv3(ch + code_dim, ch), _norm(norm, ch),
                                    nn.ReLU(True)) if use_concat else None
        self.adaptive = code_dim > 0 and injection == "adain"
        self.middle = nn.Sequential(*[_AdaResBlock(ch, norm, code_dim) if self.adaptive else _ResBlock(ch, norm)
                                      for _ in range(n_blocks)])
        self.up = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        self.fuse = nn.ModuleList() if arch == "unet" else None
        use_film = code_dim > 0 and ("film" in injection or self.adaptive)
        self.film = nn.ModuleList() if use_film else None
        for _ in range(n_down):
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         conv3(ch, ch // 2)))
            if self.fuse is not None:  # [upsampled (ch/2), encoder skip (ch/2)] → ch/2
                self.fuse.append(conv3(ch, ch // 2))
            self.up_norm.append(_norm(norm, ch // 2))
            if self.film is not None:
                self.film.append(_FiLM(code_dim, ch // 2))
            ch //= 2
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh())

    @property
    def conditioned(self) -> bool:
        """Whether the generator takes a colour code."""
        return self.encoder_hist is not None

    def encode(self, h_ref: Tensor) -> Tensor:
        """Colour code of a reference histogram, ``(N, 3, K)`` → ``(N, D)``."""
        if self.encoder_hist is None:
            raise ValueError("this generator is unconditioned (code_dim=0): it has no colour code")
        return self.encoder_hist(h_ref)

    def encode_image(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The encoder's output ``(N, ngf·2^n_down, H/s, W/s)`` and its feature maps at every finer
        resolution, finest first: ``[(N, ngf, H, W), (N, 2 ngf, H/2, W/2), …]`` (the U-Net's skips)."""
        skips, f = [], x
        for i, layer in enumerate(self.down):
            f = layer(f)
            if isinstance(layer, nn.ReLU) and i < len(self.down) - 1:
                skips.append(f)
        return f, skips

    def forward(self, x: Tensor, h_ref: Tensor | None = None, code: Tensor | None = None) -> Tensor:
        """Translate ``x (N, 3, H, W)`` in [-1, 1] to ``(N, 3, H, W)`` in (-1, 1).

        Args:
            x: input images; ``H`` and ``W`` divisible by the stride ``2 ** n_down``.
            h_ref: reference histograms ``(N, 3, K)`` (conditioned generators; ignored otherwise).
            code: a colour code ``(N, D)`` instead of ``h_ref`` (for code interpolation).
        """
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"image height and width must be divisible by {self.stride}, got {tuple(x.shape[-2:])}")
        if self.conditioned and code is None:
            if h_ref is None:
                raise ValueError("this generator is conditioned: pass h_ref (N, 3, K) or code (N, D)")
            code = self.encode(h_ref)
        f, skips = self.encode_image(x)
        if self.inject is not None:
            f = self.inject[2](self.inject[1](self._inject_conv(f, code)))
        if self.adaptive:
            for block in self.middle:
                f = block(f, code)
        else:
            f = self.middle(f)
        for i, (up, norm) in enumerate(zip(self.up, self.up_norm)):
            f = up(f)
            if self.fuse is not None:
                f = self.fuse[i](torch.cat([f, skips[-1 - i]], dim=1))
            f = norm(f)
            if self.film is not None:
                f = self.film[i](f, code)
            f = torch.relu(f)
        return self.out(f)

    def _inject_conv(self, f: Tensor, code: Tensor) -> Tensor:
        """The injection conv of ``[f, tile(code)]`` (paper Fig. 2), without building the tiled map.

        Split ``W = [W_f, W_c]`` by input channels: ``conv([f, tile(c)]) = conv(f, W_f) + b +
        conv(tile(c), W_c)``, and the last term is a per-sample, per-channel bias map: at pixel ``p``,
        ``Σ_t A_t · [p + t inside the image]`` with ``A_t = W_c[:, :, t] · c`` for each of the 3×3 taps
        ``t`` (zero padding: taps falling outside add nothing, so border pixels differ; reflection
        padding: the tiled code reflects onto itself, so every pixel gets ``Σ_t A_t``). Exact (equal to
        the concatenation in float64 up to rounding, ``tests/test_networks.py``) and ``D`` times cheaper
        for the code's part than convolving ``D`` constant channels.

        ``f (N, C, h, w)``, ``code (N, D)`` → ``(N, C, h, w)``.
        """
        conv = self.inject[0]
        w = conv.weight  # spectral-normalised (C, C + D, 3, 3)
        C, (h, wd) = f.shape[1], f.shape[2:]
        taps = torch.einsum("octu,nc->notu", w[:, C:], code.to(w.dtype))  # (N, C, 3, 3)
        if self.padding == "reflect":
            out = nn.functional.conv2d(nn.functional.pad(f, (1, 1, 1, 1), mode="reflect"), w[:, :C], conv.bias)
            return out + taps.sum((2, 3)).to(out.dtype)[:, :, None, None]
        out = nn.functional.conv2d(f, w[:, :C], conv.bias, padding=1)
        inside = nn.functional.pad(f.new_ones(h, wd), (1, 1, 1, 1))
        valid = torch.stack([torch.stack([inside[i:i + h, j:j + wd] for j in range(3)]) for i in range(3)])
        return out + torch.einsum("notu,tuhw->nohw", taps.to(out.dtype), valid.to(out.dtype))


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
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), _norm(norm, out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` → ``(N, 1, H', W')`` logits."""
        return self.net(x)


def build_models(config) -> dict[str, nn.Module]:
    """``{"G", "F", "D_x", "D_y"}`` for a :class:`histgan.config.TrainConfig` (weights N(0, 0.02)).

    ``G`` is conditioned for ``histgan_*``, ``F`` for ``histgan_bi``; spectral norm on all four
    networks except for plain ``cyclegan``. Uses the torch global RNG (seed first).
    """
    def gen(conditioned: bool) -> Generator:
        return Generator(config.ngf, config.n_down, config.n_blocks, config.code_dim if conditioned else 0,
                         config.bins, config.injection, config.norm, config.generator, config.padding)

    models: dict[str, nn.Module] = {"G": gen(config.condition_G), "F": gen(config.condition_F),
                                    "D_x": Discriminator(config.ndf, config.d_layers, config.norm),
                                    "D_y": Discriminator(config.ndf, config.d_layers, config.norm)}
    for m in models.values():
        _init_weights(m)
        if config.spectral_norm:
            apply_spectral_norm(m)
    return models


def _init_weights(module: nn.Module) -> None:
    """CycleGAN's init: conv/linear weights N(0, 0.02), biases 0 (FiLM projections stay zero)."""
    film = {id(m.proj) for m in module.modules() if isinstance(m, _FiLM)}
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and id(sub) not in film:
            nn.init.normal_(sub.weight, 0.0, 0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


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
