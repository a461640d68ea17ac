"""The training engine: a pure :func:`train_step` and the resumable loop :func:`fit`.

Conditioning (our reading of the paper's Fig. 1, stated once here):

* ``G(x, h(y))``: the reference for G is the batch's own ``y`` (the data pair x and y at random, so
  it is an unrelated Y image); the result should look like Y with y's colours, so
  ``L_hist(h(G(x)) over x's mask, h(y) over y's mask)``.
* ``F(y, h(x))`` for ``histgan_bi``: X_ref is the batch's ``x``; ``histgan_uni``'s F has no code.
* Cycle (eq 10): ``F(G(x, h(y)), h(x)) ≈ x`` — F reconstructs x with x's **own** histogram, and
  ``G(F(y, h(x)), h(y)) ≈ y``.
* Identity (eq 11): ``G(y, h(y)) ≈ y`` and ``F(x, h(x)) ≈ x`` — "your own colours" means "keep".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from histgan.train.checkpoint import RunLock, list_checkpoints, load_latest_good, write_run_checkpoint
from histgan.config import TrainConfig
from histgan.errors import HistganError
from histgan.histogram import trusted_inputs
from histgan.io import atomic_write_json, atomic_write_text
from histgan.data.loader import default_num_workers, to_device, training_batches
from histgan.losses import GANLoss, colour_loss, cycle_loss, identity_loss, masked_histogram, total_loss
from histgan.networks import build_models
from histgan.weight_average import WeightAverage
from histgan.train.runtime import (Distributed, autocast_dtype, environment_report, get_rng_state, init_distributed,
                             seed_everything, set_rng_state)

__all__ = ["ImagePool", "make_optimisers", "lr_factor", "train_step", "train_step_lazy", "fit", "train_run", "variant_jobs",
           "make_dataset"]

#: Config fields that may change when a run is resumed (everything else must match).
RESUMABLE_CHANGES = {"steps", "device", "amp", "num_workers", "data", "run_dir", "log_every", "sample_every",
                     "checkpoint_every", "keep_checkpoints"}


class ImagePool:
    """A buffer of past fakes for the discriminator (Shrivastava et al. 2017; CycleGAN's pool).

    Until full, each fake is stored and shown; then with probability ½ a fake replaces a random
    stored one and the stored one is shown instead. Uses the torch global RNG (CPU scalars: reading
    them back does not wait for a GPU). State = one tensor.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, fakes: Tensor) -> Tensor:
        """``(N, 3, H, W)`` detached fakes → ``(N, 3, H, W)`` images for D."""
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(len(self.images), ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> Tensor:
        """The stored images as one ``(M, 3, H, W)`` CPU tensor (``M`` may be 0)."""
        return torch.stack(self.images).cpu() if self.images else torch.zeros(0)

    def load(self, state: Tensor, device: torch.device) -> None:
        """Inverse of :meth:`state`."""
        self.images = [im.to(device) for im in state] if state.numel() else []


def make_optimisers(models: Mapping[str, nn.Module], config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for ``G`` and ``F`` together (``"G"``) and for ``D_x`` and ``D_y`` together (``"D"``)."""
    def adam(*names: str) -> torch.optim.Optimizer:
        params = [p for n in names for p in models[n].parameters()]
        return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2))

    return {"G": adam("G", "F"), "D": adam("D_x", "D_y")}


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear decay: 1 until ``decay_start · steps``, then linearly to 0 at ``steps`` (CycleGAN's)."""
    start = config.decay_start * config.steps
    if step < start or config.steps <= start:
        return 1.0
    return max(0.0, (config.steps - step) / (config.steps - start))


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def _check_batch(batch: Mapping[str, Any], step: int | None) -> None:
    for key in ("x", "y"):
        if not torch.isfinite(batch[key]).all():
            names = batch.get(f"{key}_name", "?")
            raise HistganError(f"batch '{key}' holds NaN/Inf at step {step} (images {names}); "
                               "training stopped, the last checkpoint is intact")


def _check_losses(terms: Mapping[str, Tensor], step: int | None) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise HistganError(f"loss '{name}' is {float(value.detach())} at step {step}; training stopped, the last "
                               "good checkpoint is intact (lower lr, check the data, or resume)")


def train_step(models: Mapping[str, nn.Module], optimisers: Mapping[str, torch.optim.Optimizer],
               batch: Mapping[str, Any], config: TrainConfig, pools: Mapping[str, ImagePool] | None = None,
               amp_dtype: torch.dtype | None = None, step: int | None = None, fast: bool = True) -> dict[str, float]:
    """One optimisation step of G/F (eq 7) then of D_x/D_y (eq 9); returns every loss as a float.

    ``fast=True`` (the default) computes the same losses with fewer network calls: each generator
    runs twice per step, not three times (translation and identity share one call on the
    concatenated batch, then the cycle), each discriminator once per update (real and pooled fakes
    concatenated), and a spectral-normalised weight ``W / σ(W)`` is computed once per update phase
    and reused (``torch.nn.utils.parametrize.cached``), not on every call. Concatenating is exact
    because instance norm (and no norm) treats every sample on its own; with ``norm="batch"`` the
    calls stay separate. The one difference from ``fast=False`` (one call per term, the textbook
    form) is how often spectral norm's power iteration runs: once per network per phase, as in
    Miyato et al. (one iteration per update), instead of once per call. With converged power
    iterations the two give the same losses and gradients (``tests/test_train.py``); see
    BENCHMARKS.md for the speed.

    Args:
        models: ``{"G", "F", "D_x", "D_y"}`` (plain or DDP-wrapped), on one device.
        optimisers: ``{"G": Adam over G and F, "D": Adam over D_x and D_y}``.
        batch: ``x, y (N, 3, H, W)`` in [-1, 1] and ``x_mask, y_mask (N, 1, H, W)``, on that device.
        config: the run's config (variant, λ weights, bins, bandwidth, loss kinds).
        pools: image pools ``{"x", "y"}`` of past fakes for D (``None``: no pool).
        amp_dtype: autocast dtype (``torch.bfloat16``) or ``None`` for float32.
        step: step number, only for error messages.
        fast: fewer, batched network calls and spectral norm once per phase (above).

    Returns:
        ``gan_G, gan_F, cycle_x, cycle_y, idt_x, idt_y, hist_y, [hist_x], loss_G, D_x, D_y``.

    Raises:
        HistganError: a NaN/Inf in the batch or in a loss (naming it and ``step``); no weight is
            updated in that case.
    """
    _check_batch(batch, step)
    return {k: float(v) for k, v in _step(models, optimisers, batch, config, pools, amp_dtype, fast, True, step).items()}


def train_step_lazy(models: Mapping[str, nn.Module], optimisers: Mapping[str, torch.optim.Optimizer],
                    batch: Mapping[str, Any], config: TrainConfig, pools: Mapping[str, ImagePool] | None = None,
                    amp_dtype: torch.dtype | None = None, fast: bool = True) -> dict[str, Tensor]:
    """:func:`train_step` without a host–device synchronisation: the form :func:`fit` runs.

    Nothing is read back from the device: no check of the batch, of the histogram's inputs
    (:func:`histgan.histogram.trusted_inputs`) or of the losses before backward, and the losses come
    back as detached 0-dim tensors, not floats. The caller checks them later, many steps at once
    (:func:`fit` stacks them with the batch's finiteness and reads them on log and checkpoint steps
    only), so a NaN is noticed up to ``log_every − 1`` steps late and the weights of those steps are
    updated with it; :func:`fit` writes no checkpoint before that check.

    Args and keys of the result: as for :func:`train_step`.
    """
    with trusted_inputs():
        return _step(models, optimisers, batch, config, pools, amp_dtype, fast, False, None)


def _step(models, optimisers, batch, c: TrainConfig, pools, amp_dtype, fast: bool, check: bool,
          step: int | None) -> dict[str, Tensor]:
    """One step; with ``check``, every loss is tested for NaN/Inf before its backward (a sync)."""
    x, y, x_mask, y_mask = (batch[k] for k in ("x", "y", "x_mask", "y_mask"))
    autocast = (torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    with torch.no_grad():  # the references' histograms h_ref (data: no gradient)
        h_y = masked_histogram(y, y_mask, c.bins, c.bandwidth) if c.condition_G else None
        h_x = masked_histogram(x, x_mask, c.bins, c.bandwidth) if c.condition_F else None
    batched = fast and c.norm != "batch"  # per-sample norms: a concatenated call = separate calls
    sn_cache = parametrize.cached if fast else contextlib.nullcontext
    terms, fake_x, fake_y = _generator_step(models, optimisers["G"], batch, h_x, h_y, c, autocast, sn_cache,
                                            batched, check, step)
    d = _discriminator_step(models, optimisers["D"], batch, fake_x, fake_y, pools, c, autocast, sn_cache,
                            batched, check, step)
    losses = {k: v.detach() for k, v in {**terms, **d}.items()}
    if not c.condition_G:  # monitor only: how far G's colours are from y's (no gradient)
        with torch.no_grad():
            h_y = masked_histogram(y, y_mask, c.bins, c.bandwidth)
            losses["hist_y"] = colour_loss(fake_y, x_mask, h_y, c.bins, c.bandwidth, c.hist_kind)
    return losses


@contextlib.contextmanager
def _sn_weights_in_float32(sn_cache, *nets: nn.Module):
    """Inside ``parametrize.cached``: compute every spectral-normalised ``W / σ(W)`` (and its power
    iteration) now, before autocast is entered, so that they are float32 and not bf16 products."""
    if sn_cache is parametrize.cached:
        for net in nets:
            for module in _unwrap(net).modules():
                if parametrize.is_parametrized(module, "weight"):
                    module.weight  # noqa: B018  (fills the cache)
    yield


def _pair(net: nn.Module, a: Tensor, b: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``net(a, h), net(b, h)`` as one call on the concatenated batch (per-sample norms only)."""
    out = net(torch.cat([a, b]), *(() if h is None else (h.repeat(2, 1, 1),)))
    return out[:a.shape[0]], out[a.shape[0]:]


def _generator_step(models, opt: torch.optim.Optimizer, batch, h_x: Tensor | None, h_y: Tensor | None,
                    c: TrainConfig, autocast, sn_cache, batched: bool,
                    check: bool, step: int | None) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Eq (7) for G and F with D_x, D_y frozen; one optimiser step. Returns terms and detached fakes."""
    G, F, D_x, D_y = (models[k] for k in ("G", "F", "D_x", "D_y"))
    x, y, x_mask, y_mask = (batch[k] for k in ("x", "y", "x_mask", "y_mask"))
    gan = GANLoss(c.gan_loss)
    for p in [*D_x.parameters(), *D_y.parameters()]:
        p.requires_grad_(False)
    opt.zero_grad(set_to_none=True)
    idt = c.lambda_idt > 0
    with sn_cache(), _sn_weights_in_float32(sn_cache, G, F, D_x, D_y), autocast:
        if batched and idt:  # G(x) and G(y) (identity) need only the data: one call, then the cycle
            fake_y, idt_y = _pair(G, x, y, h_y)
            fake_x, idt_x = _pair(F, y, x, h_x)
        else:  # the textbook form: one call per term
            fake_y, fake_x = G(x, h_y), F(y, h_x)
            idt_y, idt_x = (G(y, h_y), F(x, h_x)) if idt else (None, None)
        terms = {"gan_G": gan(_unwrap(D_y)(fake_y), True), "gan_F": gan(_unwrap(D_x)(fake_x), True),
                 "cycle_x": cycle_loss(F(fake_y, h_x), x), "cycle_y": cycle_loss(G(fake_x, h_y), y)}
        if idt:
            terms["idt_x"] = identity_loss(idt_x, x)
            terms["idt_y"] = identity_loss(idt_y, y)
    if c.condition_G:  # eq (6): fake over the input's mask vs reference over its own
        terms["hist_y"] = colour_loss(fake_y, x_mask, h_y, c.bins, c.bandwidth, c.hist_kind)
    if c.condition_F:
        terms["hist_x"] = colour_loss(fake_x, y_mask, h_x, c.bins, c.bandwidth, c.hist_kind)
    terms["loss_G"] = total_loss(terms, c.lambda_gan, c.lambda_cycle, c.lambda_idt, c.lambda_hist)
    if check:
        _check_losses(terms, step)
    terms["loss_G"].backward()
    opt.step()
    for p in [*D_x.parameters(), *D_y.parameters()]:
        p.requires_grad_(True)
    return terms, fake_x.detach(), fake_y.detach()


def _discriminator_step(models, opt: torch.optim.Optimizer, batch, fake_x: Tensor, fake_y: Tensor,
                        pools: Mapping[str, ImagePool] | None, c: TrainConfig, autocast, sn_cache,
                        batched: bool, check: bool, step: int | None) -> dict[str, Tensor]:
    """Eq (9) for D_x and D_y on real images and pooled past fakes; one optimiser step."""
    gan, D_x, D_y = GANLoss(c.gan_loss), models["D_x"], models["D_y"]
    opt.zero_grad(set_to_none=True)
    old_y = pools["y"].query(fake_y) if pools else fake_y
    old_x = pools["x"].query(fake_x) if pools else fake_x
    with sn_cache(), _sn_weights_in_float32(sn_cache, D_x, D_y), autocast:
        if batched:
            (real_y, past_y), (real_x, past_x) = _pair(D_y, batch["y"], old_y), _pair(D_x, batch["x"], old_x)
        else:
            real_y, past_y, real_x, past_x = D_y(batch["y"]), D_y(old_y), D_x(batch["x"]), D_x(old_x)
        d = {"D_y": 0.5 * (gan(real_y, True) + gan(past_y, False)),
             "D_x": 0.5 * (gan(real_x, True) + gan(past_x, False))}
    if check:
        _check_losses(d, step)
    (d["D_x"] + d["D_y"]).backward()
    opt.step()
    return d


# ---- data ----------------------------------------------------------------------------------------
def make_dataset(config: TrainConfig):
    """The training set: :class:`histgan.data.folders.UnpairedImageFolder` over ``config.data``."""
    from histgan.data.folders import UnpairedImageFolder

    if not Path(config.data).is_dir():
        raise FileNotFoundError(f"data folder {config.data} does not exist; make one with "
                                "'python -m histgan data synthetic --out DIR' or pass --data")
    return UnpairedImageFolder(config.data, phase="train", size=config.image_size, masks="auto",
                               flip=config.flip, seed=config.seed, recolour_hue=config.recolour_hue,
                               recolour_chroma=config.recolour_chroma)


# ---- the loop ------------------------------------------------------------------------------------
def fit(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train the models of ``config.variant`` for ``config.steps`` steps; returns the run directory.

    The run directory gets ``config.json``, ``environment.json``, ``losses.jsonl`` (one line per
    logged step with every loss), ``samples/step_XXXXXX.png`` (input | reference | output rows) and
    ``checkpoints/step_XXXXXX.pt`` + ``checkpoints/latest.pt``. Under ``torchrun`` every rank trains
    on its share of each batch order (DistributedDataParallel); rank 0 logs and checkpoints.

    Args:
        config: the run's configuration.
        resume: continue from the newest readable checkpoint (``latest.pt``, else older ones, with a
            warning). On CPU with the same config, the final weights are bit-identical to an
            uninterrupted run's.
        progress: show a tqdm bar with the losses.

    Each step is :func:`train_step_lazy`: nothing is read back from the device except on log and
    checkpoint steps, when the losses and batch checks of every step since the last read are read
    in one transfer. A NaN/Inf therefore stops the run at the next log or checkpoint step (at most
    ``log_every − 1`` steps late), with the message naming the first bad step; no checkpoint is
    written before that check, so the newest checkpoint is always finite.

    Raises:
        HistganError: the run directory is locked by a live process, holds checkpoints but
            ``resume`` is False, its config differs from ``config``, or a loss/batch is NaN/Inf.
    """
    dist, device = init_distributed(config.device)
    run_dir = Path(config.run_dir)
    lock = RunLock(run_dir) if dist.is_main else contextlib.nullcontext()
    try:
        with lock:
            _fit(config, resume, progress, dist, device, run_dir)
    finally:
        if dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return run_dir


def train_run(run_dir: str, preset: str = "quick", resume: bool | str = "auto", progress: bool = False,
              **overrides: Any) -> Path:
    """Train one run from plain (JSON) parameters: the function form of a parallel job.

    ``train_run("runs/a", "cpu", variant="cyclegan")`` is ``fit(make_config("cpu", run_dir="runs/a",
    variant="cyclegan"))``; ``resume="auto"`` resumes when the folder holds a checkpoint, so a killed
    job continues when :func:`histgan.train.parallel.run_parallel` runs it again.

    Args:
        run_dir: the run folder. preset: a :data:`histgan.config.PRESETS` name.
        resume: ``True``, ``False`` or ``"auto"``. progress: show the bar.
        **overrides: :class:`TrainConfig` fields (``variant``, ``data``, ``steps``, ...).
    """
    from histgan.config import make_config

    config = make_config(preset, run_dir=str(run_dir), **overrides)
    if resume == "auto":
        resume = bool(list_checkpoints(run_dir)) or (Path(run_dir) / "checkpoints" / "latest.pt").is_file()
    return fit(config, resume=bool(resume), progress=progress)


def variant_jobs(runs: str | os.PathLike, data: str | os.PathLike, preset: str = "quick", steps: int | None = None,
                 masker_steps: int | None = None, progress: bool = True) -> list:
    """Jobs for :func:`histgan.train.parallel.run_parallel` that train the paper's four variants into
    ``runs/variant=<name>/`` (the names :func:`histgan.book.sweep.run_id` gives), the longest first, and — with
    ``masker_steps`` — the reference masker (:func:`histgan.train.masker.fit_masker`) into
    ``runs/variant=histgan_bi/masker/``, where ``translate --checkpoint`` of that run finds it.

    Every job resumes its folder (``resume="auto"``), so running the jobs again after an interruption
    finishes what was left and skips what was done.
    """
    from histgan.config import VARIANTS
    from histgan.train.parallel import Job

    runs = Path(runs)
    jobs = [Job(name=v, run_dir=runs / f"variant={v}", target="histgan.train.loop:train_run",
                params={"run_dir": str(runs / f"variant={v}"), "preset": preset, "variant": v, "data": str(data),
                        "resume": "auto", "progress": progress, **({} if steps is None else {"steps": steps})})
            for v in reversed(VARIANTS)]  # histgan_bi and histgan_uni take longest: start them first
    if masker_steps is not None:
        masker = runs / "variant=histgan_bi" / "masker"
        jobs.append(Job(name="masker", run_dir=masker, target="histgan.train.masker:fit_masker",
                        params={"data_root": str(data), "run_dir": str(masker), "steps": masker_steps,
                                "resume": "auto", "progress": progress}))
    return jobs


def _fit(config: TrainConfig, resume: bool, progress: bool, dist: Distributed, device: torch.device,
         run_dir: Path) -> None:
    from histgan.progress import progress_bar

    seed_everything(config.seed + dist.rank, deterministic=device.type == "cpu")
    dataset = make_dataset(config)
    models = {k: m.to(device) for k, m in build_models(config).items()}
    if device.type == "cuda":
        models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
    optimisers = make_optimisers(models, config)
    pools = {"x": ImagePool(config.pool_size), "y": ImagePool(config.pool_size)}
    samples = _sample_batch(dataset, device)
    averages = {k: WeightAverage(models[k], config.ema) for k in ("G", "F")} if config.ema else {}
    start, log = _start(config, resume, run_dir, models, optimisers, pools, device, dist, averages)
    if start >= config.steps:  # finished before (e.g. shown by a notebook): its records stay as written
        return
    if dist.is_main:
        config.to_json(run_dir / "config.json")
        atomic_write_json(run_dir / "environment.json",
                          {**environment_report(device, dist.world_size), "started_at_step": start})
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        models = {k: nn.parallel.DistributedDataParallel(m, device_ids=ids) for k, m in models.items()}
    amp_dtype = autocast_dtype(config.amp, device)
    bar = progress_bar(total=config.steps, initial=start, disable=not (progress and dist.is_main), desc=config.variant,
               dynamic_ncols=True)
    workers = default_num_workers(device) if config.num_workers is None else config.num_workers
    batches = training_batches(dataset, config.batch_size, config.seed, start, dist.rank, dist.world_size,
                               workers, pin_memory=device.type == "cuda")
    pending: list[tuple[int, Tensor, list[str], tuple[Any, Any]]] = []  # (step, row, loss names, image names)
    t0 = time.perf_counter()
    warming = config.replace(lambda_gan=0.0)  # the first `warmup` steps: no adversarial terms for G, F
    for step in range(start, config.steps):
        lr = config.lr * lr_factor(step, config)
        for opt in optimisers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        batch = to_device(next(batches), device)
        done = step + 1
        step_config = warming if step < config.warmup else config
        pending.append((done, *_lazy_step(models, optimisers, batch, step_config, pools, amp_dtype, averages)))
        bar.update(1)
        checkpoint = done % config.checkpoint_every == 0 or done == config.steps
        logging = done % config.log_every == 0 or done == config.steps
        if logging or checkpoint:  # the only reads from the device: every pending step at once
            logs = _read_pending(pending, dist)
            pending.clear()
        ranks = _gather_rank_states(pools, dist) if checkpoint and dist.enabled else None
        if not dist.is_main:
            continue
        if logging:
            log.append({"step": done, "lr": lr, **logs, "sec_per_step": (time.perf_counter() - t0) / (done - start)})
            atomic_write_text(run_dir / "losses.jsonl", "".join(json.dumps(r) + "\n" for r in log))
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in ("loss_G", "D_y", "hist_y", "cycle_x")})
        if config.sample_every and (done % config.sample_every == 0 or done == config.steps):
            _save_samples(_unwrap(models["G"]), samples, config, run_dir / "samples" / f"step_{done:06d}.png")
        if checkpoint:
            _save(run_dir, done, config, models, optimisers, pools, dist, ranks, averages)
    bar.close()
    if dist.enabled:  # no rank leaves (and tears the group down) before rank 0 has written the last checkpoint
        torch.distributed.barrier()


def _lazy_step(models, optimisers, batch: Mapping[str, Any], config: TrainConfig, pools,
               amp_dtype: torch.dtype | None,
               averages: Mapping[str, WeightAverage] | None = None) -> tuple[Tensor, list[str], tuple[Any, Any]]:
    """One :func:`train_step_lazy` (then one update of each weight average); returns its losses and the
    batch's finiteness stacked into one device vector ``[losses..., x finite, y finite]`` (read later by
    :func:`_read_pending`), the losses' names and the batch's image names. Nothing is read from the
    device here."""
    losses = train_step_lazy(models, optimisers, batch, config, pools, amp_dtype)
    for k, average in (averages or {}).items():
        average.update(_unwrap(models[k]))
    values = torch.stack(list(losses.values()))
    finite = torch.stack([torch.isfinite(batch["x"]).all(), torch.isfinite(batch["y"]).all()]).to(values.dtype)
    return torch.cat([values, finite]), list(losses), (batch.get("x_name"), batch.get("y_name"))


def _read_pending(pending: list[tuple[int, Tensor, list[str], tuple[Any, Any]]],
                  dist: Distributed) -> dict[str, float]:
    """Read the pending steps' losses in one transfer; raise at the first NaN/Inf (batch, then loss).

    Under DDP the ranks first agree (``all_reduce`` of a flag), so every rank raises together and
    none waits forever in the next collective. Returns the last step's losses as floats.
    """
    rows = torch.stack([row for _, row, _, _ in pending]).tolist()
    problem = None
    for (step, _, keys, names), row in zip(pending, rows):
        for key, ok, name in (("x", row[-2], names[0]), ("y", row[-1], names[1])):
            if not ok and problem is None:
                problem = (f"batch '{key}' holds NaN/Inf at step {step} (images {name or '?'}); training stopped, "
                           "the last checkpoint is intact")
        bad = next((k for k, v in zip(keys, row) if not math.isfinite(v)), None)
        if bad is not None and problem is None:
            problem = (f"loss '{bad}' is {row[keys.index(bad)]} at step {step}; training stopped, the last good "
                       "checkpoint is intact (lower lr, check the data, or resume)")
    if dist.enabled:
        flag = torch.tensor([float(problem is not None)], device=pending[-1][1].device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and problem is None:
            problem = f"another process found a NaN/Inf by step {pending[-1][0]}; training stopped on every rank"
    if problem is not None:
        raise HistganError(problem)
    return dict(zip(pending[-1][2], rows[-1][:-2]))


def _start(config: TrainConfig, resume: bool, run_dir: Path, models, optimisers, pools, device: torch.device,
           dist: Distributed, averages: Mapping[str, WeightAverage] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Restore the newest readable checkpoint (``resume``) or check the run directory is fresh."""
    has_any = (run_dir / "checkpoints" / "latest.pt").exists() or bool(list_checkpoints(run_dir))
    if not resume:
        if has_any:
            raise HistganError(f"run directory {run_dir} already holds checkpoints; pass --resume to continue "
                               "it, or choose another --out")
        return 0, []
    found = load_latest_good(run_dir)
    if found is None:
        import warnings
        warnings.warn(f"--resume: {run_dir} has no checkpoint yet, starting at step 0", RuntimeWarning, stacklevel=3)
        return 0, []
    state, path = found
    # fields added since the checkpoint was written count with their defaults (an old run still resumes)
    saved, now = {**TrainConfig().to_dict(), **state["config"]}, config.to_dict()
    diff = [f"{k}={saved.get(k)!r} (now {now[k]!r})" for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if diff:
        raise HistganError(f"checkpoint {path} was trained with other settings: {', '.join(diff)}; "
                           "resume with the same settings or choose another --out")
    for k, m in models.items():
        m.load_state_dict(state["models"][k])
    for k, opt in optimisers.items():
        opt.load_state_dict(state["optimisers"][k])
    for k, average in (averages or {}).items():
        average.load_state_dict(state["ema"][k])
    others = state.get("ranks") or []  # ranks 1.. of a DDP run: their own pools and RNG states
    own = state if dist.is_main else others[dist.rank - 1] if len(others) == dist.world_size - 1 else None
    for k, pool in pools.items():
        pool.load((own or state)["pools"][k], device)
    if own is not None:
        set_rng_state(own["rng"])
    else:  # saved by another number of processes: re-seed from (seed, rank, step)
        seed_everything(config.seed + 7919 * dist.rank + state["step"], deterministic=device.type == "cpu")
    losses = run_dir / "losses.jsonl"
    log = [json.loads(line) for line in losses.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if losses.is_file() else []
    return int(state["step"]), [r for r in log if r.get("step", 0) <= state["step"]]


def _gather_rank_states(pools: Mapping[str, ImagePool], dist: Distributed) -> list[dict[str, Any]]:
    """Every rank's image pools and RNG states, on rank 0 (a collective: all ranks call it). Each rank's pool holds
    its own past fakes, so a resumed DDP run needs all of them to continue bit-identically."""
    mine = {"pools": {k: pool.state() for k, pool in pools.items()}, "rng": get_rng_state()}
    everyone: list[Any] | None = [None] * dist.world_size if dist.is_main else None
    torch.distributed.gather_object(mine, everyone, dst=0)  # only rank 0 writes checkpoints
    return everyone or []


def _save(run_dir: Path, step: int, config: TrainConfig, models, optimisers, pools, dist: Distributed,
          ranks: list[dict[str, Any]] | None = None, averages: Mapping[str, WeightAverage] | None = None) -> None:
    """Checkpoint ``step``: models, optimisers (their lr follows from the step), pools, RNG states, and
    the weight averages of G and F (``config.ema``) under ``"ema"``.

    ``ranks``: under DDP, every rank's pools and RNG states from :func:`_gather_rank_states`.
    """
    state = {"format": 1, "step": step, "config": config.to_dict(), "world_size": dist.world_size,
             "models": {k: _unwrap(m).state_dict() for k, m in models.items()},
             "optimisers": {k: opt.state_dict() for k, opt in optimisers.items()},
             "pools": {k: pool.state() for k, pool in pools.items()}, "rng": get_rng_state(),
             "ranks": (ranks or [])[1:]}
    if averages:
        state["ema"] = {k: a.state_dict() for k, a in averages.items()}
    write_run_checkpoint(run_dir, step, state, config.keep_checkpoints)


def _sample_batch(dataset, device: torch.device, n: int = 4) -> dict[str, Tensor]:
    """Fixed images for sample grids: inputs ``x_i`` with references ``y_{i+1}`` (epoch-0 pairing)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    stack = {k: torch.stack([it[k] for it in items]).to(device) for k in ("x", "x_mask", "y", "y_mask")}
    return {"x": stack["x"], "x_mask": stack["x_mask"], "ref": stack["y"].roll(1, 0),
            "ref_mask": stack["y_mask"].roll(1, 0)}


@torch.no_grad()
def _save_samples(G: nn.Module, samples: Mapping[str, Tensor], config: TrainConfig, path: Path) -> None:
    """Grid of rows ``input | reference | G(input, h(reference))`` (eval mode; no RNG, no state change)."""
    from histgan.images import save_image_grid

    was_training = G.training
    G.eval()
    h = masked_histogram(samples["ref"], samples["ref_mask"], config.bins, config.bandwidth) \
        if config.condition_G else None
    out = G(samples["x"].float(), h)
    G.train(was_training)
    save_image_grid([[samples["x"][i], samples["ref"][i], out[i]] for i in range(len(out))], path)
