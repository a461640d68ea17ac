"""Finding the skin in a reference photograph: a small U-Net segmenter (the "masker").

The colour code is the histogram of the reference's **foreground** (paper Fig. 1: background
pixels excluded). A user's photograph has no mask; :class:`Masker` predicts one. It is a U-Net
(Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation"):
an encoder of ``levels`` max-pool downsamplings, a decoder of nearest-neighbour upsamplings, each
concatenated with the encoder features of its scale (skip connections), and a 1×1 head giving one
foreground logit per pixel — the encoder–decoder of the survey's segmentation section, about 50k
parameters at the default width.

It is trained (:func:`fit_masker`) on the benchmark's Y images and masks (``trainB/``,
``trainB_mask/``) under :func:`histgan.train.masker_augment.augment` (new backgrounds, geometry, colour)
with binary cross-entropy plus the soft Dice loss (Milletari, Navab & Ahmadi, "V-Net"):

    L = BCE(σ(z), m) + 1 − (2 Σ σ(z) m + 1) / (Σ σ(z) + Σ m + 1)

A masker run folder holds ``config.json``, ``environment.json``, ``metrics.json`` and
``checkpoints/`` (written like a translator run's: atomic, checksummed, loaded with
``torch.load(weights_only=True)``). By default a translator run keeps its masker in
``RUN/masker/`` (:data:`MASKER_DIRNAME`), where ``translate --reference-mask auto`` looks for it.
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
from histgan.train.masker_augment import augment

__all__ = ["MASKER_DIRNAME", "TRAIN_HINT", "MaskerConfig", "Masker", "masker_loss", "fit_masker", "load_masker",
           "predict_mask", "masker_iou"]

#: Folder of a translator run that holds its masker (``RUN/masker/``).
MASKER_DIRNAME = "masker"
#: The command that trains a masker, quoted by every error that needs one.
TRAIN_HINT = "python -m histgan masker --data DIR --out RUN/masker"
#: Memory layout of the masker's activations: channels-last convolutions are ~1.7× faster on CPU
#: at these widths (8–32 channels) than the default layout (measured, one thread).
_FORMAT = torch.channels_last
#: Config fields that may change when a masker run is resumed.
_RESUMABLE = {"steps", "device", "data", "run_dir", "checkpoint_every"}


@dataclass(frozen=True)
class MaskerConfig:
    """A masker training run (saved as ``config.json`` in its folder)."""

    data: str = "data/synthetic"  # dataset root with trainB/ and trainB_mask/ (testB/ + mask: held-out IoU)
    run_dir: str = "runs/default/masker"  # output folder: config, environment, metrics, checkpoints
    steps: int = 500  # optimisation steps (one augmented batch each); 500 × 16 images: IoU 0.97 on testB
    batch_size: int = 16  # images per step
    size: int = 64  # side the network sees; predict_mask resizes inputs to it and masks back
    width: int = 8  # channels of the first level; level i has width · (i + 1)
    levels: int = 3  # max-pool downsamplings (size must be divisible by 2 ** levels)
    lr: float = 3e-3  # Adam learning rate, cosine-decayed to 0 over `steps`
    keep_background: float = 0.2  # probability that an image keeps its own background
    seed: int = 0  # seeds the weights and every batch (batch s is drawn from (seed, s))
    device: str = "auto"  # auto (cuda → mps → cpu), cpu, cuda, ...
    checkpoint_every: int = 100  # steps between checkpoints (and one at the end)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "size", "width", "levels", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise HistganError(f"masker {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.size % 2 ** self.levels:
            raise HistganError(f"masker size {self.size} must be divisible by 2 ** levels = {2 ** self.levels}")
        if not (self.lr > 0 and 0 <= self.keep_background <= 1):
            raise HistganError(f"masker lr must be > 0 and keep_background in [0, 1], got {self.lr}, "
                               f"{self.keep_background}")


def _block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Masker(nn.Module):
    """U-Net skin segmenter: ``(N, 3, S, S)`` in [-1, 1] → foreground logits ``(N, 1, S, S)``.

    Args:
        width: channels of the first level; level ``i`` has ``width · (i + 1)`` (two 3×3 convs each
            in the encoder, one in the decoder, batch norm and ReLU after each).
        levels: downsamplings; ``S`` must be divisible by ``2 ** levels``.
        size: the side ``S`` :func:`predict_mask` resizes to.
    """

    def __init__(self, width: int = 8, levels: int = 3, size: int = 64) -> None:
        super().__init__()
        self.size = size
        ch = [width * (i + 1) for i in range(levels + 1)]
        self.down = nn.ModuleList(_block(3 if i == 0 else ch[i - 1], ch[i], 2) for i in range(levels + 1))
        self.up = nn.ModuleList(_block(ch[i + 1] + ch[i], ch[i], 1) for i in reversed(range(levels)))
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, S, S)`` → logits ``(N, 1, S, S)`` (foreground where > 0)."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nnf.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([nnf.interpolate(x, scale_factor=2.0, mode="nearest"), skip], 1))
        return self.head(x)


def masker_loss(logits: Tensor, masks: Tensor) -> Tensor:
    """BCE plus soft Dice (module docstring): logits and masks ``(N, 1, H, W)`` → scalar."""
    p = torch.sigmoid(logits)
    dice = (2 * (p * masks).sum() + 1) / (p.sum() + masks.sum() + 1)
    return nnf.binary_cross_entropy_with_logits(logits, masks) + 1 - dice


def _resize(t: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(t.shape[-2:]) == tuple(hw):
        return t
    return nnf.interpolate(t, size=hw, mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def predict_mask(masker: Masker, images: Tensor) -> Tensor:
    """Foreground masks of images of any size: ``(N, 3, H, W)`` or ``(3, H, W)`` in [-1, 1] → ``(N, 1, H, W)``.

    The images are resized (bilinear, antialiased) to the masker's ``S × S``, segmented, and the
    logits resized back to ``H × W``; a pixel is foreground (1.0) where its logit is > 0, else 0.0.
    """
    if not isinstance(images, Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise HistganError(f"images must be a (N, 3, H, W) or (3, H, W) tensor, got "
                           f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    x = images.unsqueeze(0) if images.dim() == 3 else images
    device = next(masker.parameters()).device
    was_training = masker.training
    masker.eval()
    logits = masker(_resize(x.float().to(device), (masker.size, masker.size)).contiguous(memory_format=_FORMAT))
    masker.train(was_training)
    return (_resize(logits, tuple(x.shape[-2:])) > 0).float().to(images.device)


def load_masker(path: str | os.PathLike, device: str | torch.device = "cpu") -> Masker:
    """A trained masker from its run folder (newest readable checkpoint) or a checkpoint ``.pt`` file.

    Raises:
        HistganError: no masker there (the message says how to train one), or not a masker checkpoint.
    """
    path = Path(path)
    if path.is_file():
        state = load_checkpoint(path)
    else:
        found = load_latest_good(path) if path.is_dir() else None
        if found is None:
            raise HistganError(f"no trained masker in {path}; train one with '{TRAIN_HINT}'")
        state, path = found
    if state.get("kind") != "masker":
        raise HistganError(f"checkpoint {path} is not a masker checkpoint; train one with '{TRAIN_HINT}'")
    c = MaskerConfig(**state["config"])
    masker = Masker(c.width, c.levels, c.size)
    masker.load_state_dict(state["model"])
    return masker.to(select_device(str(device)), memory_format=_FORMAT).eval()


def masker_iou(masker: Masker, data_root: str | os.PathLike, folder: str = "testB") -> float:
    """Mean intersection over union of :func:`predict_mask` with ``root/{folder}_mask`` over the images.

    Raises:
        HistganError: ``root/{folder}_mask`` does not exist (no ground truth to compare with).
    """
    from histgan.data.folders import load_domain
    from histgan.metrics import iou

    if not (Path(data_root) / f"{folder}_mask").is_dir():
        raise HistganError(f"{Path(data_root) / f'{folder}_mask'} does not exist: no ground-truth masks for {folder}")
    images, masks, _ = load_domain(data_root, folder)
    pred = torch.cat([predict_mask(masker, images[i:i + 64]) for i in range(0, len(images), 64)])
    return float(torch.from_numpy(iou(pred > 0, masks > 0)).nanmean())


def _batch(images: Tensor, masks: Tensor, config: MaskerConfig, step: int) -> tuple[Tensor, Tensor]:
    """The augmented batch of ``step``: a function of ``(seed, step)`` alone (what makes resuming exact)."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    idx = torch.randint(len(images), (config.batch_size,), generator=g)
    return augment(images[idx], masks[idx], g, config.keep_background)


def _start(config: MaskerConfig, resume: bool, model: Masker, opt: torch.optim.Optimizer) -> tuple[int, list]:
    state = checkpoint_to_resume(config.run_dir, dataclasses.asdict(config), _RESUMABLE, resume, "masker",
                                 "pass --resume to continue, or choose another --out")
    if state is None:
        return 0, []
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimiser"])
    return int(state["step"]), list(state.get("log", []))


def fit_masker(data_root: str | os.PathLike, run_dir: str | os.PathLike, steps: int = MaskerConfig.steps,
               seed: int = MaskerConfig.seed, device: str = MaskerConfig.device, resume: bool | str = False,
               progress: bool = True, **options: Any) -> Path:
    """Train a :class:`Masker` on ``data_root/trainB`` + ``trainB_mask``; returns ``run_dir``.

    Args:
        data_root: a dataset written by :func:`histgan.data.synthetic.write_dataset` (or any root with
            ``trainB/`` and ``trainB_mask/``); images are resized to ``size``.
        run_dir: output folder (``config.json``, ``environment.json``, ``metrics.json``, ``checkpoints/``).
        steps, seed, device: see :class:`MaskerConfig`.
        resume: continue from the newest readable checkpoint; on CPU the final weights equal an
            uninterrupted run's. ``"auto"``: resume when ``run_dir`` holds a checkpoint, else start
            (how the main job's parallel stage runs it, so that a killed job continues).
        progress: a tqdm bar with the loss and the rate.
        **options: other :class:`MaskerConfig` fields (``batch_size``, ``size``, ``width``, ...).

    Raises:
        HistganError: no ``trainB_mask/`` folder, a locked or non-empty ``run_dir`` without
            ``resume``, or settings that differ from the checkpoint's.
    """
    config = MaskerConfig(data=str(data_root), run_dir=str(run_dir), steps=steps, seed=seed, device=device, **options)
    if not (Path(data_root) / "trainB_mask").is_dir():
        raise HistganError(f"{Path(data_root) / 'trainB_mask'} does not exist: the masker learns from Y images "
                           "with masks (make a set with 'python -m histgan data synth --out DIR')")
    resume = resume_wanted(resume, run_dir, "masker")
    with RunLock(run_dir):
        _fit(config, resume, progress)
    return Path(run_dir)


def _fit(config: MaskerConfig, resume: bool, progress: bool) -> None:
    from histgan.data.folders import load_domain
    from histgan.progress import progress_bar

    dev = select_device(config.device)
    seed_everything(config.seed, deterministic=dev.type == "cpu")
    images, masks, _ = load_domain(config.data, "trainB", config.size)
    model = Masker(config.width, config.levels, config.size).to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    start, log = _start(config, resume, model, opt)
    run_dir = Path(config.run_dir)
    atomic_write_json(run_dir / "config.json", dataclasses.asdict(config))
    atomic_write_json(run_dir / "environment.json", {**environment_report(dev), "started_at_step": start})
    bar = progress_bar(total=config.steps, initial=start, disable=not progress, desc="masker", unit="step", dynamic_ncols=True)
    t0, model = time.perf_counter(), model.train()
    for step in range(start, config.steps):
        for group in opt.param_groups:  # cosine decay, a function of the step (exact on resume)
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        x, m = _batch(images, masks, config, step)
        opt.zero_grad(set_to_none=True)
        loss = masker_loss(model(x.to(dev, memory_format=_FORMAT)), m.to(dev))
        loss.backward()
        opt.step()
        done = step + 1
        log.append([done, float(loss.detach())])
        bar.update(1)
        bar.set_postfix(loss=f"{log[-1][1]:.3f}", refresh=False)  # tqdm shows the rate (step/s)
        if done % config.checkpoint_every == 0 or done == config.steps:
            write_run_checkpoint(run_dir, done, {"kind": "masker", "step": done, "config": dataclasses.asdict(config),
                                                 "model": model.state_dict(), "optimiser": opt.state_dict(),
                                                 "log": log}, keep=2)
    bar.close()
    _write_metrics(config, model.eval(), log, start, time.perf_counter() - t0)


def _write_metrics(config: MaskerConfig, model: Masker, log: list, start: int, seconds: float) -> None:
    """``metrics.json``: loss curve (every 25 steps), time, and the held-out IoU when testB has masks."""
    root = Path(config.data)
    held_out = (root / "testB_mask").is_dir()
    atomic_write_json(Path(config.run_dir) / "metrics.json", {
        "steps": config.steps, "resumed_from_step": start, "seconds": round(seconds, 2),
        "steps_per_second": round((config.steps - start) / max(seconds, 1e-9), 2),
        "final_loss": log[-1][1] if log else None, "loss": [r for r in log if r[0] % 25 == 0 or r[0] == config.steps],
        "parameters": sum(p.numel() for p in model.parameters()),
        "iou_testB": masker_iou(model, root) if held_out else None,
    })
