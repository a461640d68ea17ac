"""One training step: the pure :func:`train_step` (and its sync-free form), optimisers, image pool, lr schedule.

Conditioning (our reading of the paper's Fig. 1, stated once here):

* ``G(x, h(y))``: the reference for G is the batch's own ``y`` (the data pair x and y at random, so
  it is an unrelated Y image); the result should look like Y with y's colours, so
  ``L_hist(h(G(x)) over x's mask, h(y) over y's mask)``.
* ``F(y, h(x))`` for ``histgan_bi``: X_ref is the batch's ``x``; ``histgan_uni``'s F has no code.
* Cycle (eq 10): ``F(G(x, h(y)), h(x)) ≈ x`` — F reconstructs x with x's **own** histogram, and
  ``G(F(y, h(x)), h(y)) ≈ y``.
* Identity (eq 11): ``G(y, h(y)) ≈ y`` and ``F(x, h(x)) ≈ x`` — "your own colours" means "keep".
  With ``identity_hue``/``identity_chroma`` the batch carries ``y_idt``, ``y`` with its skin recoloured,
  and G's term becomes ``G(y_idt, h(y)) ≈ y``: "these colours" means "make them so".
* With ``backdrop_code`` (not ``"off"``) every conditioned call also gets the reference's backdrop descriptor
  (:func:`histgan.networks.conditioning.backdrop_descriptor` of ``y`` for G, of ``x`` for F), zeroed for a
  random :data:`BACKDROP_DROP` of the samples so that the generators also learn a backdrop of their own
  for references given without one; with ``lambda_mean > 0`` the mean-colour term is also taken over
  the backgrounds (the fake's outside the input's mask vs the reference's outside its own).
* With ``mask_input`` every generator call also gets its input's mask: ``G(x, m_x)``, ``F(G(x), m_x)``,
  ``G(y, m_y)`` and so on — a fake keeps the mask of the image it was made from.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from histgan.config import TrainConfig
from histgan.errors import HistganError
from histgan.histogram import trusted_inputs
from histgan.losses import (GANLoss, colour_loss, cycle_loss, identity_loss, masked_histogram, masked_mean_labs,
                            mean_colour_losses, total_loss)
from histgan.networks.conditioning import FiLM, HistogramEncoder, backdrop_descriptor

#: Share of the samples whose backdrop descriptor is zeroed ("no backdrop given") in training.
BACKDROP_DROP = 0.2

__all__ = ["BACKDROP_DROP", "ImagePool", "code_parameters", "make_optimisers", "lr_factor", "train_step", "train_step_lazy", "unwrap"]


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


def code_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model``'s colour-code path: its histogram encoder and every FiLM projection
    (decoder FiLM, AdaIN blocks, colour head); empty for an unconditioned network or a discriminator."""
    model = unwrap(model)
    found: dict[int, nn.Parameter] = {}
    for sub in model.modules():
        if isinstance(sub, (HistogramEncoder, FiLM)):
            found.update((id(p), p) for p in sub.parameters())
    return list(found.values())


def make_optimisers(models: Mapping[str, nn.Module], config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for ``G`` and ``F`` together (``"G"``) and for ``D_x`` and ``D_y`` together (``"D"``).

    With ``config.code_lr != 1`` the generators' optimiser has two parameter groups: the colour code's
    path (:func:`code_parameters`) with ``lr_scale = code_lr``, and the rest with ``lr_scale = 1``;
    the training loop sets each group's rate to ``lr_scale · lr · lr_factor(step)``. With
    ``code_lr == 1`` it has one group, as before the option existed (old checkpoints resume).
    On CPU and CUDA they use torch's fused Adam kernel (:func:`_fused`; the same update, rounded
    differently in the last bits than the one-operation-at-a-time form).
    """
    def adam(*names: str) -> torch.optim.Optimizer:
        params = [p for n in names for p in models[n].parameters()]
        code = {id(p) for n in names for p in code_parameters(models[n])}
        if config.code_lr == 1 or not code:
            groups: list[dict[str, Any]] = [{"params": params}]
        else:
            groups = [{"params": [p for p in params if id(p) not in code], "lr_scale": 1.0},
                      {"params": [p for p in params if id(p) in code], "lr_scale": float(config.code_lr),
                       "lr": config.lr * config.code_lr}]
        return torch.optim.Adam(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=_fused(params))

    return {"G": adam("G", "F"), "D": adam("D_x", "D_y")}


def _fused(params: list[nn.Parameter]) -> bool | None:
    """Adam's fused kernel (one per parameter, not a dozen small operations) where torch has it for the
    parameters' device, CPU or CUDA; ``None`` (torch's default) elsewhere."""
    return True if params and all(p.device.type in ("cpu", "cuda") for p in params) else None


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear decay: 1 until ``decay_start · steps``, then linearly to 0 at ``steps`` (CycleGAN's)."""
    start = config.decay_start * config.steps
    if step < start or config.steps <= start:
        return 1.0
    return max(0.0, (config.steps - step) / (config.steps - start))


def unwrap(m: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper, or ``m`` itself."""
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
        ``gan_G, gan_F, cycle_x, cycle_y, idt_x, idt_y, hist_y, [hist_x], [mean_y, mean_x],
        [mean_bg_y, mean_bg_x], loss_G, D_x, D_y`` (``mean_*`` with ``lambda_mean > 0``, ``mean_bg_*``
        also with ``backdrop_code``).

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
    with torch.no_grad():  # the references' histograms h_ref (data: no gradient), and mean colours
        h_y = masked_histogram(y, y_mask, c.bins, c.bandwidth) if c.condition_G else None
        h_x = masked_histogram(x, x_mask, c.bins, c.bandwidth) if c.condition_F else None
        backdrop = c.backdrop_code != "off"
        bd = {"y": _backdrop(y, y_mask) if c.condition_G and backdrop else None,
              "x": _backdrop(x, x_mask) if c.condition_F and backdrop else None}
        # each reference's mean colour over its mask and, with a backdrop, over its background (one conversion)
        lab = {k: masked_mean_labs(img, _mean_masks(m, bd[k] is not None)) if conditioned and c.lambda_mean else None
               for k, img, m, conditioned in (("y", y, y_mask, c.condition_G), ("x", x, x_mask, c.condition_F))}
    batched = fast and c.norm != "batch"  # per-sample norms: a concatenated call = separate calls
    sn_cache = parametrize.cached if fast else contextlib.nullcontext
    terms, fake_x, fake_y = _generator_step(models, optimisers["G"], batch, h_x, h_y, lab, bd, c, autocast,
                                            sn_cache, batched, check, step)
    d = _discriminator_step(models, optimisers["D"], batch, fake_x, fake_y, pools, c, autocast, sn_cache,
                            batched, check, step)
    losses = {k: v.detach() for k, v in {**terms, **d}.items()}
    if not c.condition_G:  # monitor only: how far G's colours are from y's (no gradient)
        with torch.no_grad():
            h_y = masked_histogram(y, y_mask, c.bins, c.bandwidth)
            losses["hist_y"] = colour_loss(fake_y, x_mask, h_y, c.bins, c.bandwidth, c.hist_kind)
    return losses


def _mean_masks(mask: Tensor, background: bool) -> list[Tensor]:
    """The masks of the mean-colour terms: ``[mask]``, and with ``background`` also ``mask == 0``."""
    return [mask, (mask == 0).to(mask.dtype)] if background else [mask]


def _backdrop(images: Tensor, masks: Tensor) -> Tensor:
    """The backdrop descriptors ``(N, 7)`` of a batch of references, each zeroed with probability
    :data:`BACKDROP_DROP` (torch's global generator, on the batch's device: seeded, no read-back)."""
    keep = (torch.rand(len(images), 1, device=images.device) >= BACKDROP_DROP).to(images.dtype)
    return backdrop_descriptor(images, masks) * keep


@contextlib.contextmanager
def _sn_weights_in_float32(sn_cache, *nets: nn.Module):
    """Inside ``parametrize.cached``: compute every spectral-normalised ``W / σ(W)`` (and its power
    iteration) now, before autocast is entered, so that they are float32 and not bf16 products."""
    if sn_cache is parametrize.cached:
        for net in nets:
            for module in unwrap(net).modules():
                if parametrize.is_parametrized(module, "weight"):
                    module.weight  # noqa: B018  (fills the cache)
    yield


def _pair(net: nn.Module, a: Tensor, b: Tensor, h: Tensor | None = None, backdrop: Tensor | None = None,
          masks: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """``net(a, h, backdrop), net(b, h, backdrop)`` (with ``a``'s and ``b``'s input masks, for a generator that
    reads them) as one call on the concatenated batch (per-sample norms only)."""
    out = _call(net, torch.cat([a, b]), None if h is None else h.repeat(2, 1, 1),
                None if backdrop is None else backdrop.repeat(2, 1), None if masks is None else torch.cat(masks))
    return out[:a.shape[0]], out[a.shape[0]:]


def _call(net: nn.Module, a: Tensor, h: Tensor | None, backdrop: Tensor | None, mask: Tensor | None = None) -> Tensor:
    """``net(a)`` (a discriminator, an unconditioned generator), ``net(a, h)``, or with the backdrop
    descriptors ``net(a, h, None, backdrop)``; with ``mask`` (``mask_input``) also ``mask=mask``."""
    kw = {} if mask is None else {"mask": mask}
    if h is None:
        return net(a, **kw)
    return net(a, h, **kw) if backdrop is None else net(a, h, None, backdrop, **kw)


def _generator_step(models, opt: torch.optim.Optimizer, batch, h_x: Tensor | None, h_y: Tensor | None,
                    lab: Mapping[str, list[Tensor] | None], bd: Mapping[str, Tensor | None], c: TrainConfig, autocast, sn_cache, batched: bool,
                    check: bool, step: int | None) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Eq (7) for G and F with D_x, D_y frozen; one optimiser step. Returns terms and detached fakes."""
    G, F, D_x, D_y = (models[k] for k in ("G", "F", "D_x", "D_y"))
    x, y, x_mask, y_mask = (batch[k] for k in ("x", "y", "x_mask", "y_mask"))
    y_in = batch.get("y_idt", y)  # G's identity input: y, or y recoloured (colour-restoring identity)
    gan = GANLoss(c.gan_loss)
    for p in [*D_x.parameters(), *D_y.parameters()]:
        p.requires_grad_(False)
    opt.zero_grad(set_to_none=True)
    idt = c.lambda_idt > 0
    # mask_input: each generator reads its input's mask; a fake keeps its input's (the cycle's second
    # generator is told the silhouette, so the first need not mark it in its output)
    mx, my = (x_mask, y_mask) if c.mask_input else (None, None)
    with sn_cache(), _sn_weights_in_float32(sn_cache, G, F, D_x, D_y), autocast:
        if batched and idt:  # G(x) and G(y) (identity) need only the data: one call, then the cycle
            fake_y, idt_y = _pair(G, x, y_in, h_y, bd["y"], None if mx is None else (mx, my))
            fake_x, idt_x = _pair(F, y, x, h_x, bd["x"], None if mx is None else (my, mx))
        else:  # the textbook form: one call per term
            fake_y, fake_x = _call(G, x, h_y, bd["y"], mx), _call(F, y, h_x, bd["x"], my)
            idt_y, idt_x = (_call(G, y_in, h_y, bd["y"], my), _call(F, x, h_x, bd["x"], mx)) if idt else (None, None)
        terms = {"gan_G": gan(unwrap(D_y)(fake_y), True), "gan_F": gan(unwrap(D_x)(fake_x), True),
                 "cycle_x": cycle_loss(_call(F, fake_y, h_x, bd["x"], mx), x),
                 "cycle_y": cycle_loss(_call(G, fake_x, h_y, bd["y"], my), y)}
        if idt:
            terms["idt_x"] = identity_loss(idt_x, x)
            terms["idt_y"] = identity_loss(idt_y, y)
    if c.condition_G:  # eq (6): fake over the input's mask vs reference over its own
        terms["hist_y"] = colour_loss(fake_y, x_mask, h_y, c.bins, c.bandwidth, c.hist_kind)
    if c.condition_F:
        terms["hist_x"] = colour_loss(fake_x, y_mask, h_x, c.bins, c.bandwidth, c.hist_kind)
    # beyond the paper: the mean colour's ΔE, same masks as eq (6), and over the backgrounds where given
    # (both from one conversion of the fake to L*a*b*)
    mean: dict[str, Tensor] = {}
    for k, fake, mask in (("y", fake_y, x_mask), ("x", fake_x, y_mask)):
        if lab[k] is not None:  # the references' means: [foreground] or [foreground, background]
            far = mean_colour_losses(fake, _mean_masks(mask, len(lab[k]) > 1), lab[k])
            mean[f"mean_{k}"] = far[0].mean()
            if len(far) > 1:  # the background's term, over the samples whose backdrop was given
                given = bd[k][:, -1]
                mean[f"mean_bg_{k}"] = (far[1] * given).sum() / given.sum().clamp_min(1.0)
    terms.update((k, mean[k]) for k in ("mean_y", "mean_x", "mean_bg_y", "mean_bg_x") if k in mean)
    terms["loss_G"] = total_loss(terms, c.lambda_gan, c.lambda_cycle, c.lambda_idt, c.lambda_hist, c.lambda_mean)
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
