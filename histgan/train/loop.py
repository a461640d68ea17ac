"""The resumable training loop :func:`fit`: the data set, DDP, resuming, logging, checkpoints and sample grids.

Each step is :func:`histgan.train.step.train_step_lazy`; the loop reads the losses back only on log
and checkpoint steps.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from histgan.train.checkpoint import RunLock, list_checkpoints, load_latest_good, write_run_checkpoint
from histgan.config import TrainConfig
from histgan.errors import HistganError
from histgan.io import atomic_write_json, atomic_write_text
from histgan.data.loader import default_num_workers, to_device, training_batches
from histgan.losses import masked_histogram
from histgan.networks.conditioning import backdrop_descriptor
from histgan.networks.generator import build_models
from histgan.networks.weight_average import WeightAverage
from histgan.train.runtime import (Distributed, autocast_dtype, environment_report, get_rng_state, init_distributed,
                             seed_everything, set_rng_state)
from histgan.train.step import ImagePool, lr_factor, make_optimisers, train_step_lazy, unwrap

__all__ = ["fit", "make_dataset"]

#: Config fields that may change when a run is resumed (everything else must match).
RESUMABLE_CHANGES = {"steps", "device", "amp", "num_workers", "data", "run_dir", "log_every", "sample_every",
                     "checkpoint_every", "keep_checkpoints"}


# ---- data ----------------------------------------------------------------------------------------
def make_dataset(config: TrainConfig):
    """The training set: :class:`histgan.data.folders.UnpairedImageFolder` over ``config.data``."""
    from histgan.data.folders import UnpairedImageFolder

    if not Path(config.data).is_dir():
        raise FileNotFoundError(f"data folder {config.data} does not exist; make one with "
                                "'python -m histgan data synthetic --out DIR' or pass --data")
    return UnpairedImageFolder(config.data, phase="train", size=config.image_size, masks="auto",
                               flip=config.flip, seed=config.seed, recolour_hue=config.recolour_hue,
                               recolour_chroma=config.recolour_chroma,
                               identity_hue=config.identity_hue if config.condition_G else 0.0,
                               identity_chroma=config.identity_chroma if config.condition_G else 1.0)


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
                group["lr"] = lr * group.get("lr_scale", 1.0)  # code_lr: the colour code's group
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
            _save_samples(unwrap(models["G"]), samples, config, run_dir / "samples" / f"step_{done:06d}.png")
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
        average.update(unwrap(models[k]))
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
             "models": {k: unwrap(m).state_dict() for k, m in models.items()},
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
    backdrop = backdrop_descriptor(samples["ref"].float(), samples["ref_mask"]) \
        if config.condition_G and config.backdrop_code != "off" else None
    out = G(samples["x"].float(), h, None, backdrop, **({"mask": samples["x_mask"]} if config.mask_input else {}))
    G.train(was_training)
    save_image_grid([[samples["x"][i], samples["ref"][i], out[i]] for i in range(len(out))], path)
