"""The networks of the paper's Fig. 1–2 and how a variant builds them: the conditioned generator and
:func:`build_models`.

* :class:`Generator` — encoder (stride-2 convs) → middle (residual blocks) → decoder (upsampling),
  the colour code injected at the middle layer by concatenation, by FiLM in the decoder, or both.
  With ``code_dim=0`` it is the plain CycleGAN generator (same class, conditioning off).
* :func:`build_models` — ``G``, ``F`` and the PatchGAN discriminators ``D_x``, ``D_y``
  (:class:`histgan.networks.discriminator.Discriminator`), initialised as CycleGAN does and spectral-normalised
  (:func:`histgan.networks.spectral_norm.apply_spectral_norm`).

The colour code comes from :class:`histgan.networks.conditioning.HistogramEncoder` and is applied by the pieces of
:mod:`histgan.networks.conditioning`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from histgan.networks.conditioning import BACKDROP_DIM, AdaResBlock, FiLM, HistogramEncoder
from histgan.networks.discriminator import Discriminator
from histgan.networks.layers import ResBlock, norm_layer
from histgan.networks.spectral_norm import apply_spectral_norm, left_out

__all__ = ["Generator", "build_models", "mask_kwargs"]


def mask_kwargs(G: nn.Module, mask: Tensor | None) -> dict[str, Tensor | None]:
    """``{"mask": mask}`` for a generator built with ``mask_input`` (which then raises, naming what to pass,
    if ``mask`` is None), ``{}`` for any other: ``G(x, code=c, **mask_kwargs(G, x_mask))``."""
    return {"mask": mask} if getattr(G, "mask_input", False) else {}


class Generator(nn.Module):
    """ResNet (or U-Net) encoder–decoder generator with an optional colour code (paper Fig. 2).

    ``x (N, 3, H, W)`` → 7×7 conv → ``n_down`` stride-2 convs → [inject] → ``n_blocks`` residual
    blocks → ``n_down`` × (nearest upsampling, 3×3 conv, norm, [FiLM], ReLU) → 7×7 conv → [colour
    head] → tanh.
    Upsampling is resize-then-convolve, not a transposed convolution (Odena, Dumoulin & Olah 2016:
    strided transposed convolutions leave checkerboard artefacts).

    Injection (when ``code_dim > 0``):

    * ``"concat"`` — the code is tiled over the middle feature map, concatenated, and a 3×3 conv
      maps back to the middle width (the paper's "inject into the middle layer"). The conv's part from
      the code is constant over the map except on its zero-padded border, and the instance norm that
      follows subtracts each channel's mean: the code reaches the output only through that border
      (with ``padding="reflect"``, not at all).
    * ``"film"`` — after each decoder normalisation, per-channel scale and shift from the code, so
      the decoder's instance norms cannot wash the colour out.
    * ``"concat+film"`` — both, the default. Measured (``histgan_bi``, ``cpu`` preset, 1,000 steps,
      synthetic 64² data, 16 × 16 test pairs, one seed): mean ΔE concat 7.2, film 4.9, both 4.2
      (plain CycleGAN 29.1); luminance correlation with the input inside the mask 0.55 / 0.75 / 0.61.
      Both gives the lowest colour error; FiLM alone keeps more shading (the paper's trade-off). With
      the ``cpu`` preset's other options (colour head, histogram moments, mean-colour term, ...) the
      difference is gone (two seeds each: ΔE 3.02 / 3.06 film, 2.93 / 3.17 both), so the ``cpu`` and
      ``paper`` presets use ``"film"``, 2–15 % cheaper per training step (BENCHMARKS.md §22).
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
        colour_head: a FiLM of the output's three channels by the code, just before the tanh
            (``(1 + γ(c)) · z + β(c)`` per image and channel, zero-initialised): the code's one direct
            lever on the output's colour, which every other injection reaches only through the
            decoder (and, in the U-Net, against the input's colour in the skips). Conditioned only.
        code_moments: the code also carries the reference histogram's per-channel mean and standard
            deviation (:func:`histgan.networks.conditioning.histogram_moments`), computed, not learnt:
            ``D + 6`` entries. Conditioned only.
        backdrop: ``"off"``, ``"middle"``, ``"decoder"`` or ``"everywhere"``: the code ends with the reference's
            :func:`~histgan.networks.conditioning.backdrop_descriptor` (seven numbers: its background's
            mean and spread per channel, and whether it has one; zeros without a reference background),
            so the output's surroundings can take the reference's, as a photograph's do. ``"middle"``:
            only the middle layer reads them (the injection conv, AdaIN's blocks), where the features
            still know where the background is; the decoder's FiLMs and the colour head, which act on
            whole channels, read the colour part alone. ``"decoder"``: the decoder's FiLMs read them
            too, the colour head (which shifts the output's R, G, B everywhere at once) does not.
            ``"everywhere"``: every layer that reads the code reads them. ``"gated"``: as
            ``"middle"`` (no middle-layer reading with ``injection="film"``), and every decoder level
            adds a backdrop FiLM of its own, ``g ⊙ (γ_b(d) · f + β_b(d))`` (eq M1d of the model page),
            where ``d`` are the seven numbers and ``g = σ(conv₁ₓ₁(f))`` is a per-pixel gate the level
            computes from its own features: the backdrop can reach the background without shifting the
            skin's channels too. Conditioned only.
        mask_input: the input's foreground mask is a fourth input channel (``2 m − 1``, so the render's
            black background and its darkest shaded skin are told apart by the mask, not by their grey
            level). Every call then needs the mask (``mask=``). In training the cycle's second
            generator gets the first one's input mask, so G need not mark the silhouette in its output
            for F to recover it.
    """

    def __init__(self, ngf: int = 32, n_down: int = 2, n_blocks: int = 4, code_dim: int = 0, bins: int = 32,
                 injection: str = "concat+film", norm: str = "instance", arch: str = "resnet",
                 padding: str = "zeros", colour_head: bool = False, code_moments: bool = False,
                 backdrop: str = "off", mask_input: bool = False) -> None:
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
        self.encoder_hist = HistogramEncoder(bins, code_dim, moments=code_moments) if code_dim > 0 else None
        if backdrop not in ("off", "middle", "decoder", "everywhere", "gated"):
            raise ValueError(f"backdrop must be 'off', 'middle', 'decoder', 'everywhere' or 'gated', got {backdrop!r}")
        if backdrop == "middle" and injection == "film":
            raise ValueError("backdrop='middle' needs a middle-layer injection ('concat', 'concat+film' or 'adain')")
        self.backdrop = backdrop != "off" and code_dim > 0
        # the code: the encoder's, then the backdrop's seven numbers; the middle layer reads all of it,
        # the decoder's FiLMs and the colour head all of it or (backdrop="middle") the colour part
        self.code_width = self.encoder_hist.out_dim + (BACKDROP_DIM if self.backdrop else 0) if code_dim > 0 else 0
        colour_only = self.encoder_hist.out_dim if code_dim > 0 else 0
        self.film_width = colour_only if backdrop in ("middle", "gated") else self.code_width  # the decoder's FiLMs
        self.head_width = colour_only if backdrop in ("middle", "decoder", "gated") else self.code_width  # colour head
        code_dim = self.code_width
        self.mask_input = mask_input
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(4 if mask_input else 3, ngf, 7),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_down):
            layers += [conv3(ch, ch * 2, 2), norm_layer(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        self.down = nn.Sequential(*layers)
        use_concat = code_dim > 0 and "concat" in injection
        self.inject = nn.Sequential(conv3(ch + code_dim, ch), norm_layer(norm, ch),
                                    nn.ReLU(True)) if use_concat else None
        self.adaptive = code_dim > 0 and injection == "adain"
        self.middle = nn.Sequential(*[AdaResBlock(ch, norm, code_dim) if self.adaptive else ResBlock(ch, norm)
                                      for _ in range(n_blocks)])
        self.up = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        self.fuse = nn.ModuleList() if arch == "unet" else None
        use_film = code_dim > 0 and ("film" in injection or self.adaptive)
        self.film = nn.ModuleList() if use_film else None
        gated = self.backdrop and backdrop == "gated"  # per level: a backdrop FiLM and its spatial gate
        self.film_backdrop = nn.ModuleList() if gated else None
        self.gate = nn.ModuleList() if gated else None
        for _ in range(n_down):
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         conv3(ch, ch // 2)))
            if self.fuse is not None:  # [upsampled (ch/2), encoder skip (ch/2)] → ch/2
                self.fuse.append(conv3(ch, ch // 2))
            self.up_norm.append(norm_layer(norm, ch // 2))
            if self.film is not None:
                self.film.append(FiLM(self.film_width, ch // 2))
            if gated:
                self.film_backdrop.append(FiLM(BACKDROP_DIM, ch // 2))
                self.gate.append(nn.Conv2d(ch // 2, 1, 1))
            ch //= 2
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh())
        self.head = FiLM(self.head_width, 3) if code_dim > 0 and colour_head else None

    @property
    def conditioned(self) -> bool:
        """Whether the generator takes a colour code."""
        return self.encoder_hist is not None

    def encode(self, h_ref: Tensor, backdrop: Tensor | None = None) -> Tensor:
        """Colour code of a reference histogram, ``(N, 3, K)`` → ``(N, code_width)``.

        ``backdrop (N, 7)`` (:func:`~histgan.networks.conditioning.backdrop_descriptor`) is appended when
        the generator was built with a ``backdrop`` (zeros when None: "no backdrop given") and must be
        None otherwise."""
        if self.encoder_hist is None:
            raise ValueError("this generator is unconditioned (code_dim=0): it has no colour code")
        code = self.encoder_hist(h_ref)
        if not self.backdrop:
            if backdrop is not None:
                raise ValueError("this generator was built with backdrop='off': it takes no backdrop")
            return code
        if backdrop is None:
            return torch.cat([code, code.new_zeros(len(code), BACKDROP_DIM)], dim=1)
        if backdrop.shape != (len(code), BACKDROP_DIM):
            raise ValueError(f"backdrop must have shape ({len(code)}, {BACKDROP_DIM}), got {tuple(backdrop.shape)}")
        return torch.cat([code, backdrop.to(code.dtype)], dim=1)

    def encode_image(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The encoder's output ``(N, ngf·2^n_down, H/s, W/s)`` and its feature maps at every finer
        resolution, finest first: ``[(N, ngf, H, W), (N, 2 ngf, H/2, W/2), …]`` (the U-Net's skips)."""
        skips, f = [], x
        for i, layer in enumerate(self.down):
            f = layer(f)
            if isinstance(layer, nn.ReLU) and i < len(self.down) - 1:
                skips.append(f)
        return f, skips

    def forward(self, x: Tensor, h_ref: Tensor | None = None, code: Tensor | None = None,
                backdrop: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Translate ``x (N, 3, H, W)`` in [-1, 1] to ``(N, 3, H, W)`` in (-1, 1).

        Args:
            x: input images; ``H`` and ``W`` divisible by the stride ``2 ** n_down``.
            h_ref: reference histograms ``(N, 3, K)`` (conditioned generators; ignored otherwise).
            code: a colour code ``(N, code_width)`` instead of ``h_ref`` (for code interpolation).
            backdrop: the references' backdrop descriptors ``(N, 7)`` (generators built with a
                ``backdrop``; None = no backdrop given).
            mask: the inputs' foreground masks ``(N, 1, H, W)`` in {0, 1}: required by a generator built
                with ``mask_input``, refused by any other.
        """
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"image height and width must be divisible by {self.stride}, got {tuple(x.shape[-2:])}")
        x = self._with_mask(x, mask)
        if self.conditioned and code is None:
            if h_ref is None:
                raise ValueError("this generator is conditioned: pass h_ref (N, 3, K) or code (N, D)")
            code = self.encode(h_ref, backdrop)
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
            g = None if self.gate is None else torch.sigmoid(self.gate[i](f))  # where the backdrop goes
            if g is not None:  # the backdrop FiLM's change, γ_b f + β_b (its output minus f)
                gamma_b, beta_b = self.film_backdrop[i].coefficients(code[:, -BACKDROP_DIM:])
                b = torch.addcmul(beta_b, f, gamma_b)
            if self.film is not None:
                f = self.film[i](f, code[:, :self.film_width])
            if g is not None:  # eq (M1d): the backdrop's own modulation, only where the gate opens
                f = torch.addcmul(f, g, b)
            f = torch.relu(f)
        if self.head is None:
            return self.out(f)
        return self.out[2](self.head(self.out[1](self.out[0](f)), code[:, :self.head_width]))

    def _with_mask(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x``, or ``[x, 2 m − 1]`` for a generator that reads the input's mask (checked)."""
        if not self.mask_input:
            if mask is not None:
                raise ValueError("this generator was built without mask_input: it takes no input mask")
            return x
        if mask is None:
            raise ValueError("this generator was trained with the input's mask as a fourth channel (mask_input): "
                             "pass mask= (N, 1, H, W), the input's foreground")
        if mask.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"mask must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}")
        return torch.cat([x, 2 * mask.to(x.dtype) - 1], dim=1)

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


def build_models(config) -> dict[str, nn.Module]:
    """``{"G", "F", "D_x", "D_y"}`` for a :class:`histgan.config.TrainConfig` (weights N(0, 0.02)).

    ``G`` is conditioned for ``histgan_*``, ``F`` for ``histgan_bi``; spectral norm on all four
    networks except for plain ``cyclegan`` (and, with ``encoder_sn=False``, except for the histogram
    encoders, which then keep torch's default init). Uses the torch global RNG (seed first).
    """
    def gen(conditioned: bool) -> Generator:
        return Generator(config.ngf, config.n_down, config.n_blocks, config.code_dim if conditioned else 0,
                         config.bins, config.injection, config.norm, config.generator, config.padding,
                         config.colour_head, config.code_moments, config.backdrop_code, config.mask_input)

    models: dict[str, nn.Module] = {"G": gen(config.condition_G), "F": gen(config.condition_F),
                                    "D_x": Discriminator(config.ndf, config.d_layers, config.norm),
                                    "D_y": Discriminator(config.ndf, config.d_layers, config.norm)}
    for m in models.values():
        # encoder_sn=False: the histogram encoder keeps torch's default init and no spectral norm
        free = [m.encoder_hist] if not config.encoder_sn and getattr(m, "encoder_hist", None) is not None else []
        _init_weights(m, exclude=free)
        if config.spectral_norm:
            apply_spectral_norm(m, exclude=free)
    return models


def _init_weights(module: nn.Module, exclude: list[nn.Module] | tuple = ()) -> None:
    """CycleGAN's init: conv/linear weights N(0, 0.02), biases 0 (FiLM projections stay zero; the
    layers inside ``exclude`` keep torch's default init)."""
    skip = left_out(module, exclude)
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and id(sub) not in skip:
            nn.init.normal_(sub.weight, 0.0, 0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
