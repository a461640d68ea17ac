"""A DCGAN of photographic knees: the survey's *decoder*, trained on the benchmark's Y images.

Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (DCGAN), and the survey of Yanai & Shimoda (CNNs that output images): a
generator that *decodes* a latent vector ``z ~ N(0, I)`` into an image with transposed convolutions,
batch norm and ReLU (tanh at the output), and a discriminator of strided convolutions, batch norm and
leaky ReLU (slope 0.2) that scores an image as real or generated. The DCGAN paper's recipe is kept:
weights drawn from N(0, 0.02) (batch-norm scales from N(1, 0.02)), Adam with lr 2·10⁻⁴ and β₁ = 0.5,
no pooling and no fully connected hidden layer. The loss is the original GAN min–max game in its
non-saturating form (binary cross-entropy on logits):

    L_D = − E_y[log D(y)] − E_z[log(1 − D(G(z)))],      L_G = − E_z[log D(G(z))]

A run folder holds ``config.json``, ``environment.json``, ``metrics.json`` and ``checkpoints/``
(atomic, checksummed, as a translator's). Batch ``s`` (its images and its ``z``) is a function of
``(seed, s)`` alone, so a resumed run reaches the same weights as an uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from histgan.errors import HistganError
from histgan.io import atomic_write_json
from histgan.train.checkpoint import (RunLock, checkpoint_to_resume, load_checkpoint, load_latest_good,
                                      resume_wanted, write_run_checkpoint)
from histgan.train.runtime import environment_report, seed_everything, select_device

__all__ = ["DcganConfig", "Generator", "Discriminator", "dcgan_init", "gan_losses", "train_step", "fit_dcgan",
           "load_dcgan", "sample"]

#: Config fields that may change when a run is resumed.
_RESUMABLE = {"steps", "device", "data", "run_dir", "checkpoint_every"}


@dataclass(frozen=True)
class DcganConfig:
    """A DCGAN training run (saved as ``config.json`` in its folder)."""

    data: str = "data/synthetic"  # dataset root; the GAN learns the images of its trainB/ folder
    run_dir: str = "runs/dcgan"  # output folder: config, environment, metrics, checkpoints
    steps: int = 600  # optimisation steps (one D update and one G update each)
    batch_size: int = 32  # real images (and as many generated ones) per step
    size: int = 64  # image side: a power of two >= 8; images are resized to it
    nz: int = 64  # dimension of the latent vector z
    ngf: int = 32  # generator channels at its last hidden layer (doubling towards the 4 × 4 start)
    ndf: int = 16  # discriminator channels at its first layer (doubling per stride-2 conv); at 32 D won outright
    lr: float = 2e-4  # Adam learning rate, both networks (DCGAN paper)
    beta1: float = 0.5  # Adam β₁ (DCGAN paper; PyTorch's default 0.9 oscillates)
    seed: int = 0  # seeds the weights and every batch (batch s and its z are drawn from (seed, s))
    device: str = "auto"  # auto (cuda → mps → cpu), cpu, cuda, ...
    checkpoint_every: int = 100  # steps between checkpoints (and one at the end)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "size", "nz", "ngf", "ndf", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise HistganError(f"dcgan {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.size < 8 or self.size & (self.size - 1):
            raise HistganError(f"dcgan size must be a power of two >= 8 (8, 16, 32, 64, ...), got {self.size}")
        if not (self.lr > 0 and 0 <= self.beta1 < 1):
            raise HistganError(f"dcgan lr must be > 0 and beta1 in [0, 1), got {self.lr}, {self.beta1}")

    @property
    def n_up(self) -> int:
        """Stride-2 layers between the 4 × 4 start and ``size``: log2(size / 4)."""
        return int(math.log2(self.size)) - 2


class Generator(nn.Module):
    """The decoder ``G``: ``z`` ``(N, nz)`` → images ``(N, 3, S, S)`` in [-1, 1].

    A 4 × 4 transposed convolution turns ``z`` (seen as ``(N, nz, 1, 1)``) into ``ngf · 2^(n_up−1)``
    maps of 4 × 4; each following 4 × 4, stride-2 transposed convolution doubles the side and halves
    the channels (batch norm, ReLU), the last one gives 3 channels and tanh.
    """

    def __init__(self, nz: int = 64, ngf: int = 32, size: int = 64) -> None:
        super().__init__()
        n_up = DcganConfig(size=size, nz=nz, ngf=ngf).n_up
        ch = [ngf * 2 ** (n_up - 1 - i) for i in range(n_up)]  # channels at 4, 8, ..., S/2
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch[0], 4, 1, 0, bias=False), nn.BatchNorm2d(ch[0]),
                                   nn.ReLU(True)]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.nz, self.net = nz, nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """``(N, nz)`` → ``(N, 3, S, S)``."""
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise HistganError(f"z must be a (N, {self.nz}) tensor, got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """``D``: images ``(N, 3, S, S)`` → logits ``(N,)`` (real where > 0); :meth:`features` gives the
    last hidden maps ``(N, ndf · 2^(n_up−1), 4, 4)``, the feature term of :func:`histgan.eval.latent.invert`.

    Stride-2 4 × 4 convolutions halve the side down to 4 × 4 (leaky ReLU 0.2; batch norm on all but
    the first), and a 4 × 4 convolution gives one logit.
    """

    def __init__(self, ndf: int = 16, size: int = 64) -> None:
        super().__init__()
        n_up = DcganConfig(size=size, ndf=ndf).n_up
        ch = [ndf * 2 ** i for i in range(n_up)]  # channels at S/2, S/4, ..., 4
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
        self.body, self.head = nn.Sequential(*layers), nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """``(N, 3, S, S)`` → ``(N, C, 4, 4)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, S, S)`` → ``(N,)`` logits."""
        return self.head(self.body(x)).flatten()


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation, for ``module.apply``: (transposed) convolution weights from
    N(0, 0.02); batch-norm scales from N(1, 0.02) and shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def gan_losses(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(L_D, L_G)`` of the module docstring from D's logits on real and generated images ``(N,)``."""
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    loss_d = (nnf.binary_cross_entropy_with_logits(real_logits, ones)
              + nnf.binary_cross_entropy_with_logits(fake_logits, zeros))
    return loss_d, nnf.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def train_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: Tensor, z: Tensor) -> dict[str, float]:
    """One DCGAN step: update ``D`` on ``real`` and ``G(z)`` (detached), then ``G`` through ``D``.

    Returns:
        ``{"loss_d", "loss_g", "d_real", "d_fake"}`` (the last two: mean probabilities D gives).
    """
    fake = G(z)
    opt_d.zero_grad(set_to_none=True)
    real_logits, fake_logits = D(real), D(fake.detach())
    loss_d, _ = gan_losses(real_logits, fake_logits)
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    _, loss_g = gan_losses(real_logits.detach(), D(fake))
    loss_g.backward()
    opt_g.step()
    return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean())}


def _batch(images: Tensor, config: DcganConfig, step: int) -> tuple[Tensor, Tensor]:
    """Real images and latents of ``step``: a function of ``(seed, step)`` alone (exact resumes)."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    idx = torch.randint(len(images), (config.batch_size,), generator=g)
    flip = torch.rand(config.batch_size, generator=g) < 0.5  # mirror half of them (a knee seen from the other side)
    real = torch.where(flip[:, None, None, None], images[idx].flip(-1), images[idx])
    return real, torch.randn(config.batch_size, config.nz, generator=g)


def _models(config: DcganConfig) -> tuple[Generator, Discriminator]:
    G, D = Generator(config.nz, config.ngf, config.size), Discriminator(config.ndf, config.size)
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    return G, D


def _start(config: DcganConfig, resume: bool, nets: dict[str, nn.Module], opts: dict[str, Any]) -> tuple[int, list]:
    state = checkpoint_to_resume(config.run_dir, dataclasses.asdict(config), _RESUMABLE, resume, "dcgan",
                                 "pass resume=True to continue, or choose another run_dir",
                                 "; train into another run_dir, or resume with the same settings")
    if state is None:
        return 0, []
    for key, module in {**nets, **opts}.items():
        module.load_state_dict(state[key])
    return int(state["step"]), list(state.get("log", []))


def fit_dcgan(data_root: str | os.PathLike, run_dir: str | os.PathLike, steps: int = DcganConfig.steps,
              seed: int = DcganConfig.seed, device: str = DcganConfig.device, resume: bool | str = False,
              progress: bool = True, **options: Any) -> Path:
    """Train a DCGAN on ``data_root/trainB``; returns ``run_dir``.

    Args:
        data_root: a dataset root with a ``trainB/`` folder (images resized to ``size``).
        run_dir: output folder (``config.json``, ``environment.json``, ``metrics.json``, ``checkpoints/``).
        steps, seed, device: see :class:`DcganConfig`.
        resume: continue from the newest readable checkpoint (on CPU the final weights equal an
            uninterrupted run's); ``"auto"``: resume when ``run_dir`` holds a checkpoint, else start.
        progress: a progress bar (:func:`histgan.progress.progress_bar`) with the losses and the rate.
        **options: other :class:`DcganConfig` fields (``batch_size``, ``size``, ``nz``, ...).

    Raises:
        HistganError: a bad setting, a locked or non-empty ``run_dir`` without ``resume``, or
            settings that differ from the checkpoint's.
    """
    config = DcganConfig(data=str(data_root), run_dir=str(run_dir), steps=steps, seed=seed, device=device, **options)
    resume = resume_wanted(resume, run_dir, "dcgan")
    with RunLock(run_dir):
        _fit(config, resume, progress)
    return Path(run_dir)


def _fit(config: DcganConfig, resume: bool, progress: bool) -> None:
    from histgan.data.folders import load_domain
    from histgan.progress import progress_bar

    dev = select_device(config.device)
    seed_everything(config.seed, deterministic=dev.type == "cpu")
    images = load_domain(config.data, "trainB", config.size)[0]
    G, D = (m.to(dev) for m in _models(config))
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    start, log = _start(config, resume, {"G": G, "D": D}, {"opt_g": opt_g, "opt_d": opt_d})
    run_dir = Path(config.run_dir)
    if start >= config.steps and (run_dir / "metrics.json").is_file():
        return  # finished: keep the run's records (its time and rate) as they are
    atomic_write_json(run_dir / "config.json", dataclasses.asdict(config))
    atomic_write_json(run_dir / "environment.json", {**environment_report(dev), "started_at_step": start})
    bar = progress_bar(total=config.steps, initial=start, disable=not progress, desc="dcgan", unit="step")
    t0 = time.perf_counter()
    G.train(), D.train()
    for step in range(start, config.steps):
        real, z = _batch(images, config, step)
        row = train_step(G, D, opt_g, opt_d, real.to(dev), z.to(dev))
        done = step + 1
        log.append([done, row["loss_d"], row["loss_g"], row["d_real"], row["d_fake"]])
        bar.update(1)
        bar.set_postfix(loss_d=f"{row['loss_d']:.2f}", loss_g=f"{row['loss_g']:.2f}", refresh=False)
        if done % config.checkpoint_every == 0 or done == config.steps:
            write_run_checkpoint(run_dir, done, {"kind": "dcgan", "step": done, "config": dataclasses.asdict(config),
                                                 "G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                                                 "opt_d": opt_d.state_dict(), "log": log}, keep=2)
    bar.close()
    seconds = time.perf_counter() - t0
    atomic_write_json(run_dir / "metrics.json", {
        "steps": config.steps, "resumed_from_step": start, "seconds": round(seconds, 2),
        "steps_per_second": round((config.steps - start) / max(seconds, 1e-9), 3),
        "columns": ["step", "loss_d", "loss_g", "d_real", "d_fake"], "log": log,
        "parameters": {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())},
    })


def load_dcgan(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[Generator, Discriminator, DcganConfig]:
    """A trained ``(G, D, config)`` in eval mode from a run folder (newest readable checkpoint) or a ``.pt``.

    Raises:
        HistganError: no checkpoint there, or not a DCGAN checkpoint (the message says how to train one).
    """
    path = Path(path)
    if path.is_file():
        state = load_checkpoint(path)
    else:
        found = load_latest_good(path) if path.is_dir() else None
        if found is None:
            raise HistganError(f"no trained DCGAN in {path}; train one with histgan.train.dcgan.fit_dcgan(data, '{path}')")
        state, path = found
    if state.get("kind") != "dcgan":
        raise HistganError(f"checkpoint {path} is not a DCGAN checkpoint (kind {state.get('kind')!r})")
    config = DcganConfig(**state["config"])
    G, D = _models(config)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    dev = select_device(str(device))
    return G.to(dev).eval(), D.to(dev).eval(), config


@torch.no_grad()
def sample(G: Generator, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` latents ``z ~ N(0, I)`` drawn from ``seed`` and their images: ``((n, nz), (n, 3, S, S))``."""
    z = torch.randn(n, G.nz, generator=torch.Generator().manual_seed(seed))
    device = next(G.parameters()).device
    return z, G(z.to(device)).cpu()
