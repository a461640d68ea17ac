"""Training configuration: one frozen dataclass, presets by name, saved as JSON next to every run.

The loss weights are those of eq (7) of Kobayashi and Wada (the training page of the book); the paper
prints none of them, so these are ours:

* ``lambda_gan = 1`` and ``lambda_cycle = 10`` — CycleGAN's (Zhu et al. 2017) values.
* ``lambda_idt = 5`` — CycleGAN's ``0.5 · lambda_cycle``; the identity term (eq 11) also anchors
  the conditioned generator: ``G(y, h(y)) ≈ y`` teaches it that "y's own colours" means "keep y".
* ``lambda_hist = 2`` — with ``K = 32`` bins and ``B = L`` the histogram loss (eq 6) between random
  pairs is ≈ 0.6–1 (measured: an untrained or plain-CycleGAN G), and ≈ 0.3 after 1,000 ``cpu`` steps
  of ``histgan_bi``; each cycle L1 term is ≈ 0.05–0.25 after the first hundred steps. So
  ``2 · L_hist`` weighs about like ``lambda_cycle · L_cycle`` (1–4). Larger values (10) or a sharper
  kernel gave slightly lower ΔE but flattened the shading in a prototype (the paper's
  colour-versus-shape trade-off).

``identity_hue`` / ``identity_chroma`` (off in the dataclass) make G's identity term (eq 11) restore
colour: ``G(ỹ, h(y)) ≈ y`` with ``ỹ`` the photograph ``y`` with its skin's hue turned and chroma scaled at
random (:func:`histgan.data.folders.recolour`), so that "y's histogram" must be read from the code, the
input no longer carrying it; an exact, per-pixel target for following the reference's colour, which
the unpaired translation itself never has. Ours, not the paper's.

``code_lr = 1`` (the same rate as the rest, in the dataclass) multiplies the learning rate of the colour
code's path: the histogram encoders and the FiLM projections (:func:`histgan.train.step.code_parameters`).
Those projections start at zero, and Adam moves a weight by about ``lr`` per step whatever its gradient,
so at ``lr = 2·10⁻⁴`` a thousand steps can grow a scale or shift by at most ≈ 0.2: the code's lever on
the colour is slow to form. Ours, not the paper's.

``lambda_mean = 0`` (off in the dataclass) weighs a term that is ours, not the paper's: the ΔE of
eq (12) between the fake's mean L*a*b* over the input's mask and the reference's over its own
(:func:`histgan.losses.mean_colour_loss`), for each conditioned generator.

The translator's design beyond the paper — ``generator`` (ResNet or U-Net), ``injection``, ``gan_loss``,
``ema`` (a moving average of the generators' weights, used to translate), ``warmup``, ``padding``
(zeros or reflection in G's 3×3 convs), ``colour_head`` (the code scales and shifts the output's three
channels), ``code_moments`` (the code also carries the reference histogram's mean and spread per channel,
computed, not learnt), ``backdrop_code`` (the code also carries the mean and spread of the reference's
background, so the output's surroundings can take the reference's), ``mask_input`` (the generators also read
their input's foreground mask), ``encoder_sn`` (spectral norm in the
histogram encoder), ``recolour_hue`` / ``recolour_chroma``
(colour augmentation of the Y photographs) — default to the CycleGAN-style choices in the dataclass, so
that a config written before a field existed loads as the run it was; the ``cpu`` and ``paper`` presets
set the combination the ablation of the training page chose (``generator="unet"``, ``gan_loss="lsgan"``,
``ema``, ``colour_head``, ``lambda_mean = 0.1``, ``code_moments``, ``code_lr = 30``, ``backdrop_code =
"gated"``, ``mask_input``, ``injection="film"``; the ``quick`` preset
keeps the plain one).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histgan.io import atomic_write_json

__all__ = ["VARIANTS", "INJECTIONS", "GENERATORS", "PADDINGS", "GAN_LOSSES", "HIST_KINDS", "TrainConfig", "PRESETS",
           "make_config"]

#: The four models of the paper's Table 2.
VARIANTS = ("cyclegan", "cyclegan_sn", "histgan_uni", "histgan_bi")
#: Where the colour code enters the generator (see :class:`histgan.networks.generator.Generator`).
INJECTIONS = ("concat", "film", "concat+film", "adain")
#: Generator architectures (see :class:`histgan.networks.generator.Generator`).
GENERATORS = ("resnet", "unet")
#: Border padding of the generator's 3×3 convolutions.
PADDINGS = ("zeros", "reflect")
#: Adversarial losses (see :class:`histgan.losses.GANLoss`).
GAN_LOSSES = ("bce", "lsgan")
#: Distances between histograms for eq (6) (see :func:`histgan.histogram.histogram_loss`).
HIST_KINDS = ("l2", "emd", "hellinger")
#: Which layers read the reference's backdrop (see :class:`histgan.networks.generator.Generator`).
BACKDROPS = ("off", "middle", "decoder", "everywhere", "gated")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Validated when made; see :data:`PRESETS`."""

    # ---- what is trained, on what, where to -----------------------------------------------------
    variant: str = "histgan_bi"  # one of VARIANTS: cyclegan | cyclegan_sn | histgan_uni | histgan_bi
    data: str = "data/synthetic"  # CycleGAN folder layout (trainA/, trainB/, ... + *_mask/)
    run_dir: str = "runs/default"  # output folder: config, environment, losses, samples, checkpoints
    steps: int = 1000  # optimisation steps (one batch each for G/F, then for D_x/D_y)
    batch_size: int = 1  # images per step and per process (DDP: per rank)
    image_size: int = 64  # square side the data are resized to; divisible by 2**n_down
    flip: bool = False  # random horizontal flips of training images (data augmentation)
    recolour_hue: float = 0.0  # Y images' foreground hue turned by up to ± this many degrees (augmentation)
    recolour_chroma: float = 1.0  # ... and its chroma scaled by a factor in [1/this, this] (1 = off)
    identity_hue: float = 0.0  # identity term G(y recoloured, h(y)) ≈ y: hue turned by up to ± this (0 = off)
    identity_chroma: float = 1.0  # ... and chroma scaled in [1/this, this] (1 = off; conditioned G only)
    # ---- networks (histgan.networks.generator) ------------------------------------------------------------
    ngf: int = 32  # generator width: channels after the first conv (doubles per downsampling)
    ndf: int = 32  # discriminator width: channels of its first conv
    n_down: int = 2  # generator downsamplings (stride 2 each); the network stride is 2**n_down
    n_blocks: int = 4  # residual blocks in the generator's middle
    d_layers: int = 2  # PatchGAN stride-2 layers: 3 → 70×70 receptive field (256²), 2 → 34×34
    norm: str = "instance"  # normalisation in G and D: "instance" | "batch" | "none"
    code_dim: int = 32  # length D of the colour code the HistogramEncoder makes from (3, K)
    injection: str = "concat+film"  # code injection: "concat" | "film" | "concat+film" | "adain"
    generator: str = "resnet"  # generator architecture: "resnet" (CycleGAN's) | "unet" (skip connections)
    padding: str = "zeros"  # border padding of G's 3×3 convs: "zeros" (CycleGAN's) | "reflect"
    colour_head: bool = False  # a FiLM of the output's R, G, B by the code before the tanh (conditioned G/F)
    code_moments: bool = False  # the code also carries the reference histogram's per-channel mean and std (D + 6)
    backdrop_code: str = "off"  # the code also carries the reference background's mean, std, presence (+ 7):
    # "off" | "middle" (read by the middle layer only) | "decoder" (and the decoder's FiLMs, not the colour
    # head) | "everywhere" (by every layer that reads the code) | "gated" (the middle layer, and per decoder level a
    # backdrop FiLM behind a per-pixel gate)
    mask_input: bool = False  # G and F also read their input's foreground mask (a fourth input channel)
    encoder_sn: bool = True  # spectral norm in the histogram encoder too (False: its layers are free, default init)
    # ---- histogram (histgan.histogram), eq (3)–(6) ----------------------------------------------
    bins: int = 32  # K, bins per colour channel
    bandwidth: float | None = None  # B, KDE bandwidth; None = one bin width 2/K
    hist_kind: str = "l2"  # distance of eq (6): "l2" (the paper's) | "emd" | "hellinger"
    # ---- losses, eq (7) (defaults explained in the module docstring) ----------------------------
    lambda_gan: float = 1.0  # weight of the adversarial terms, eq (8)–(9)
    lambda_cycle: float = 10.0  # weight of the cycle L1, eq (10)
    lambda_idt: float = 5.0  # weight of the identity L1, eq (11)
    lambda_hist: float = 2.0  # weight of the histogram loss, eq (6) (histgan variants only)
    lambda_mean: float = 0.0  # weight of the mean-colour term: ΔE (eq 12) of fake vs reference mean L*a*b* (histgan)
    gan_loss: str = "bce"  # "bce": eq (9) on logits; "lsgan": least squares (Mao et al. 2017)
    # ---- optimisation -------------------------------------------------------------------------
    lr: float = 2e-4  # Adam learning rate of both G/F and D_x/D_y
    code_lr: float = 1.0  # the colour code's path (histogram encoders, FiLM projections) learns at code_lr · lr
    beta1: float = 0.5  # Adam β1 (CycleGAN's 0.5)
    beta2: float = 0.999  # Adam β2
    decay_start: float = 0.5  # fraction of `steps` after which the lr decays linearly to 0
    warmup: int = 0  # first steps without the adversarial terms (G, F learn cycle, identity, colour only)
    pool_size: int = 50  # image pool of past fakes shown to D (Shrivastava et al.); 0 = off
    ema: float = 0.0  # decay of a moving average of G's and F's weights, used to translate (0 = off)
    # ---- reproducibility and hardware ----------------------------------------------------------
    seed: int = 0  # seeds Python, NumPy and torch (and the data order)
    device: str = "auto"  # "auto" (cuda → mps → cpu) | "cpu" | "cuda" | "cuda:1" | "mps"
    amp: bool | str = "auto"  # bf16 autocast: "auto" = on CUDA only; True / False to force
    num_workers: int | None = None  # DataLoader worker processes; None = 0 on CPU, 4 on CUDA (histgan.data.loader)
    # ---- logging and checkpoints ---------------------------------------------------------------
    log_every: int = 10  # steps between lines in losses.jsonl (and tqdm updates)
    sample_every: int = 250  # steps between sample grids in samples/ (0 = never)
    checkpoint_every: int = 250  # steps between checkpoints (the last step always gets one)
    keep_checkpoints: int = 3  # numbered checkpoints kept besides latest.pt

    def __post_init__(self) -> None:
        _validate(self)

    # ---- derived properties -------------------------------------------------------------------
    @property
    def spectral_norm(self) -> bool:
        """Spectral normalisation in G, F, D_x, D_y: every variant but plain ``cyclegan``."""
        return self.variant != "cyclegan"

    @property
    def condition_G(self) -> bool:
        """Whether G takes Y_ref's colour code (and gets L_hist)."""
        return self.variant in ("histgan_uni", "histgan_bi")

    @property
    def condition_F(self) -> bool:
        """Whether F takes X_ref's colour code (and gets L_hist): ``histgan_bi`` only."""
        return self.variant == "histgan_bi"

    @property
    def stride(self) -> int:
        """Total downsampling factor of the generator, ``2 ** n_down``."""
        return 2**self.n_down

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a config written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"config file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _validate(c: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first bad field."""
    _choice("variant", c.variant, VARIANTS)
    _choice("injection", c.injection, INJECTIONS)
    _choice("generator", c.generator, GENERATORS)
    _choice("padding", c.padding, PADDINGS)
    _choice("norm", c.norm, ("instance", "batch", "none"))
    _choice("hist_kind", c.hist_kind, HIST_KINDS)
    _choice("gan_loss", c.gan_loss, GAN_LOSSES)
    for name in ("steps", "batch_size", "image_size", "ngf", "ndf", "n_down", "d_layers", "code_dim", "bins"):
        _positive_int(name, getattr(c, name))
    for name in ("n_blocks", "warmup", "pool_size", "num_workers", "log_every", "sample_every", "checkpoint_every",
                 "keep_checkpoints", "seed"):
        if not (name == "num_workers" and c.num_workers is None):
            _positive_int(name, getattr(c, name), minimum=0)
    if c.log_every == 0:
        raise ValueError("log_every must be an integer >= 1, got 0")
    if c.bandwidth is not None and not (isinstance(c.bandwidth, (int, float)) and math.isfinite(c.bandwidth)
                                        and c.bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number or None (= 2/bins), got {c.bandwidth!r}")
    if c.image_size % c.stride:
        raise ValueError(f"image_size must be divisible by the generator stride 2**n_down = {c.stride}, "
                         f"got {c.image_size}")
    if c.image_size < 2 ** (c.d_layers + 2):
        raise ValueError(f"image_size {c.image_size} is too small for a PatchGAN with d_layers={c.d_layers} "
                         f"(needs >= {2 ** (c.d_layers + 2)})")
    for name in ("lambda_gan", "lambda_cycle", "lambda_idt", "lambda_hist", "lambda_mean", "lr", "code_lr", "beta1",
                 "beta2", "decay_start"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    for kind in ("recolour", "identity"):
        hue, chroma = getattr(c, f"{kind}_hue"), getattr(c, f"{kind}_chroma")
        if isinstance(hue, bool) or not isinstance(hue, (int, float)) or not 0 <= hue <= 180:
            raise ValueError(f"{kind}_hue must be a number of degrees in [0, 180] (0 = off), got {hue!r}")
        if isinstance(chroma, bool) or not isinstance(chroma, (int, float)) or not 1 <= chroma <= 4:
            raise ValueError(f"{kind}_chroma must be a factor in [1, 4] (1 = off), got {chroma!r}")
    if c.backdrop_code not in BACKDROPS:
        raise ValueError(f"backdrop_code must be one of {BACKDROPS}, got {c.backdrop_code!r}")
    if c.backdrop_code == "middle" and c.injection == "film":
        raise ValueError("backdrop_code='middle' needs a middle-layer injection: injection 'concat', 'concat+film' "
                         "or 'adain' (got 'film')")
    for name in ("colour_head", "encoder_sn", "code_moments", "mask_input"):
        if not isinstance(getattr(c, name), bool):
            raise ValueError(f"{name} must be True or False, got {getattr(c, name)!r}")
    if isinstance(c.ema, bool) or not isinstance(c.ema, (int, float)) or not 0 <= c.ema < 1:
        raise ValueError(f"ema must be a decay in [0, 1) (0 = no moving average), got {c.ema!r}")
    if c.beta1 >= 1 or c.beta2 >= 1 or c.decay_start > 1:
        raise ValueError("beta1 and beta2 must be < 1 and decay_start a fraction in [0, 1]")
    if not (c.amp in (True, False, "auto")):
        raise ValueError(f"amp must be True, False or 'auto', got {c.amp!r}")
    if not isinstance(c.device, str) or not c.device:
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {c.device!r}")


#: Named starting points; :func:`make_config` applies overrides on top.
PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: for tests and CI. Every code path, tiny tensors.
    "quick": dict(steps=12, batch_size=2, image_size=32, ngf=8, ndf=8, n_blocks=1, d_layers=2, code_dim=8,
                  bins=16, pool_size=4, log_every=1, sample_every=6, checkpoint_every=4, keep_checkpoints=2),
    # The main job on a 2-core CPU. Measured wall time per step (2 threads, quiet machine, the fast
    # train_step, two runs): histgan_bi 0.30–0.42 s, cyclegan 0.25–0.36 s, so 5–7 min per variant
    # (BENCHMARKS.md §2, §6). Batch 4 gives ~1.9x the images/s but, for the same time, a 35 % higher
    # ΔE (§3a), so the preset keeps batch 1.
    # Generator, adversarial loss and weight average chosen by the ablation of the training page
    # (benchmarks/ablation_translator.py): U-Net skips + least squares + a moving average together kept
    # the shading better than every non-learned baseline and made the outputs more real (SWD). Then
    # the colour: a colour head, the mean-colour term (0.1), the histogram's moments in the code and the
    # code's path at 30× the learning rate took ΔE from 4.95 to 3.14 at 1,000 steps (foreground SSIM
    # 0.841 → 0.826). Then the whole image: the reference background's mean and spread in the code, read by
    # every layer but the colour head, gave the outputs the reference's backdrop (SWD whole 103.5 → 78.4,
    # two-sample accuracy 0.969 → 0.852) at ΔE 3.20 and foreground SSIM 0.782. Then the backdrop behind a
    # per-pixel gate in the decoder ("gated") and the input's mask as a fourth input channel of G and F
    # (mask_input): ΔE 2.93, foreground SSIM 0.873, SWD whole 69.5, and no coloured rims along the limbs.
    # Last, the code by FiLM alone (injection="film"): the middle layer's injection conv is followed by an
    # instance norm that cancels the code's part of it everywhere but on the padded border; without it, two
    # seeds gave ΔE 3.02 / 3.06 and foreground SSIM 0.849 / 0.860 against the two seeds with it, 2.93 / 3.17
    # and 0.873 / 0.850, and a step 2–15 % shorter (six measurements, BENCHMARKS.md §21–22).
    # Measured at 64² only; the paper preset takes the same.
    "cpu": dict(steps=1000, batch_size=1, image_size=64, ngf=32, ndf=32, n_blocks=4, d_layers=2, code_dim=32,
                bins=32, pool_size=50, log_every=10, sample_every=250, checkpoint_every=250, keep_checkpoints=3,
                generator="unet", gan_loss="lsgan", ema=0.995, colour_head=True, lambda_mean=0.1, code_moments=True,
                code_lr=30.0, backdrop_code="gated", mask_input=True, injection="film"),
    # The paper's setting on a GPU: 256², 9 residual blocks, ngf/ndf 64, 70×70 PatchGAN.
    "paper": dict(steps=100_000, batch_size=1, image_size=256, ngf=64, ndf=64, n_blocks=9, d_layers=3,
                  code_dim=64, bins=32, pool_size=50, log_every=100, sample_every=2_000,
                  checkpoint_every=2_000, keep_checkpoints=3, generator="unet", gan_loss="lsgan", ema=0.999,
                  colour_head=True, lambda_mean=0.1, code_moments=True, code_lr=30.0, backdrop_code="gated",
                  mask_input=True, injection="film"),
}


def make_config(preset: str = "cpu", **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a named preset plus field overrides.

    Args:
        preset: a key of :data:`PRESETS` (``"quick"``, ``"cpu"``, ``"paper"``).
        **overrides: any :class:`TrainConfig` field, e.g. ``variant="cyclegan", steps=500``.

    Raises:
        ValueError: for an unknown preset or field, or an invalid value (naming the field).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}")
    return TrainConfig(**{**PRESETS[preset], **overrides})
