"""Realism without pretrained networks: patch statistics (SWD) and a classifier two-sample test.

Two set-level numbers say how far a set of generated images is from a set of real ones, with no
network trained on other data (no Inception features, nothing to download):

* **Sliced Wasserstein distance of Laplacian-pyramid patches** (:func:`sliced_wasserstein`) —
  Karras, Aila, Laine & Lehtinen (2018), *Progressive Growing of GANs for Improved Quality,
  Stability, and Variation*, §5 and Appendix D. Each image is decomposed into a Laplacian pyramid
  (finest level first, down to 16 × 16); from every level, ``patches_per_image`` random 7 × 7 × 3
  neighbourhoods are cut; each set's descriptors are normalised per colour channel (mean 0, std 1
  over that set and level); the two point clouds are projected on random unit directions, and the
  distance per direction is the mean absolute difference of the sorted projections (the 1-D
  Wasserstein-1 distance of equal-size samples)::

      SWD_l(A, B) = 1/D Σ_d 1/M Σ_m |sort(A_l θ_d)_m − sort(B_l θ_d)_m|,   θ_d ~ U(S^{146})

  reported ×10³ per level and averaged over levels, as in the paper's Table 1 (defaults here: 512
  directions, as the paper; 64 patches per image where the paper cut 128 from each of 16 384
  images — our sets hold at most a few hundred images, so every set is sampled alike). Lower is more
  alike; a set against itself is exactly 0 (both sets draw their patch positions from the same
  seed). Because of the per-set normalisation a uniform shift of one channel's level is *not*
  seen; differences in local structure, contrast between channels and texture are.
* **Classifier two-sample test** (:func:`c2st_accuracy`) — Lopez-Paz & Oquab (2017), *Revisiting
  Classifier Two-Sample Tests*: a small CNN (:func:`classifier`), trained from scratch to tell set
  A from set B on a seeded half of each, is scored on the other half. Held-out accuracy 0.5 means
  the classifier found nothing that tells the sets apart; 1.0 means it always can. With ``n``
  test images per class the accuracy of indistinguishable sets has a standard deviation of about
  ``0.5 / sqrt(2 n)``.

Both are deterministic on the CPU under a fixed seed and leave the global random state alone.
Images are ``(N, 3, H, W)`` in model space [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from histgan.errors import HistganError
from histgan.metrics import filter_same

__all__ = ["SWD_SCALE", "PATCH_SIZE", "MIN_LEVEL_SIZE", "C2ST_MAX_SIZE", "C2ST_MAX_EPOCHS", "laplacian_pyramid",
           "patch_descriptors", "SwdReference", "sliced_wasserstein", "classifier", "c2st_accuracy", "c2st_null_sd",
           "fill_background"]

#: SWD is reported multiplied by this (Karras et al. 2018, Table 1).
SWD_SCALE = 1e3
#: Side of the square neighbourhoods cut from every pyramid level (Karras et al.: 7 × 7).
PATCH_SIZE = 7
#: The coarsest pyramid level is this size (Karras et al.: 16 × 16).
MIN_LEVEL_SIZE = 16
#: Images larger than this are area-downsampled to it before the two-sample classifier (cost).
C2ST_MAX_SIZE = 64
#: The classifier trains for at most this many passes over its training split (small sets stop early).
C2ST_MAX_EPOCHS = 25
_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)  # the pyramid's 5-tap filter / 16 (Burt & Adelson)


def _check_images(images: Tensor, name: str) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise HistganError(f"{name} must be a tensor of shape (N, 3, H, W), got {got}")
    if images.shape[0] < 1:
        raise HistganError(f"{name} holds no image")
    return images.detach().float().cpu()


def _binomial(images: Tensor, gain: float = 1.0) -> Tensor:
    """Separable 5-tap binomial filter, mirrored borders, same size: ``(N, C, H, W)`` → the same."""
    return filter_same(images, torch.tensor(_BINOMIAL_5, dtype=images.dtype) * (gain ** 0.5 / 16.0))


def laplacian_pyramid(images: Tensor, min_size: int = MIN_LEVEL_SIZE) -> list[Tensor]:
    """Laplacian pyramid, finest level first, the last level the Gaussian residual of side ``min_size``.

    ``(N, C, H, W)`` → ``[(N, C, H, W), (N, C, H/2, W/2), …]``: level ``l`` is ``g_l − up(g_{l+1})``
    with ``g_{l+1} = down(g_l)`` (blur, keep every other pixel) and ``up`` zero-insertion and blur
    ×4 (Burt & Adelson 1983). A level is split while both sides are at least ``2 min_size``.
    """
    levels, g = [], images
    while min(g.shape[-2:]) >= 2 * min_size:
        down = _binomial(g)[..., ::2, ::2]
        up = torch.zeros_like(g)
        up[..., ::2, ::2] = down
        levels.append(g - _binomial(up, gain=4.0))
        g = down
    return levels + [g]


def patch_descriptors(images: Tensor, patches_per_image: int = 64, seed: int = 0) -> list[Tensor]:
    """Normalised 7 × 7 × 3 neighbourhoods of every pyramid level: → per level ``(N · P, 147)``.

    Positions are drawn from ``seed`` alone, so two sets of one shape are cut at the same places.
    Each level's descriptors are normalised per channel over the whole set (Karras et al. 2018,
    Appendix D).
    """
    images = _check_images(images, "images")
    if min(images.shape[-2:]) < MIN_LEVEL_SIZE:
        raise HistganError(f"images must be at least {MIN_LEVEL_SIZE} px a side for SWD, got {tuple(images.shape)}")
    if patches_per_image < 1:
        raise HistganError(f"patches_per_image must be a positive integer, got {patches_per_image!r}")
    g = torch.Generator().manual_seed(seed)
    out = []
    n, p = images.shape[0], patches_per_image
    off = torch.arange(PATCH_SIZE)
    for level in laplacian_pyramid(images):
        c, h, w = level.shape[1:]
        ys = torch.randint(0, h - PATCH_SIZE + 1, (n * p, 1, 1, 1), generator=g) + off[:, None]
        xs = torch.randint(0, w - PATCH_SIZE + 1, (n * p, 1, 1, 1), generator=g) + off
        img = torch.arange(n).repeat_interleave(p)[:, None, None, None]
        flat = ((img * c + torch.arange(c)[:, None, None]) * h + ys) * w + xs  # (N·P, 3, 7, 7)
        d = level.reshape(-1)[flat.reshape(-1)].reshape(n * p, c, -1)
        d = d - d.mean(dim=(0, 2), keepdim=True)
        d = d / d.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
        out.append(d.reshape(n * p, -1))
    return out


class SwdReference:
    """The sorted projections of one image set, computed once, to compare many sets against.

    Args:
        images: the reference set ``(N, 3, H, W)``.
        directions: random unit directions per level (Karras et al.: 512).
        patches_per_image: neighbourhoods cut per image and level (Karras et al.: 128).
        seed: seeds the patch positions and the directions.
    """

    def __init__(self, images: Tensor, directions: int = 512, patches_per_image: int = 64, seed: int = 0):
        if directions < 1:
            raise HistganError(f"directions must be a positive integer, got {directions!r}")
        self.shape, self.patches_per_image, self.seed = tuple(images.shape), patches_per_image, seed
        desc = patch_descriptors(images, patches_per_image, seed)
        g = torch.Generator().manual_seed(seed + 1)
        self.directions = [nnf.normalize(torch.randn(d.shape[1], directions, generator=g), dim=0) for d in desc]
        self.sorted = [self._project(d, i) for i, d in enumerate(desc)]

    def _project(self, descriptors: Tensor, level: int) -> np.ndarray:
        """Projections on every direction, each sorted: ``(M, 147)`` → ``(D, M)`` (NumPy sorts ~15× faster)."""
        return np.sort((self.directions[level].T @ descriptors.T).numpy(), axis=1)

    def distance(self, images: Tensor) -> np.ndarray:
        """SWD ×10³ per pyramid level (finest first) of ``images`` (the reference's shape) to the reference."""
        images = _check_images(images, "images")
        if tuple(images.shape) != self.shape:
            raise HistganError(f"images must have the reference set's shape {self.shape} (equal set sizes), "
                               f"got {tuple(images.shape)}")
        desc = patch_descriptors(images, self.patches_per_image, self.seed)
        return np.array([SWD_SCALE * float(np.abs(self._project(d, i) - self.sorted[i]).mean(dtype=np.float64))
                         for i, d in enumerate(desc)])


def sliced_wasserstein(a: Tensor, b: Tensor, directions: int = 512, patches_per_image: int = 64,
                       seed: int = 0) -> np.ndarray:
    """SWD ×10³ between the Laplacian patch sets of ``a`` and ``b`` (same shape), per level: → ``(L,)``.

    See the module docstring for the equation; average the levels for the paper's single number.
    """
    return SwdReference(b, directions, patches_per_image, seed).distance(a)


def classifier(width: int = 8) -> nn.Module:
    """The two-sample test's CNN: three stride-2 3 × 3 convolutions, global average pool, one logit.

    ``(N, 3, H, W)`` → ``(N,)``; ``width`` channels in the first layer, doubling, batch norm after
    the second and third (training in 20 epochs of a few batches). Averaging over positions makes
    it a judge of local statistics (colour, contrast, texture) more than of layout, and keeps it
    small enough to train in about a second.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.BatchNorm2d(4 * width), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(4 * width, 1), nn.Flatten(0))


def _train_count(n: int, train_fraction: float) -> int:
    """Images of a set of ``n`` the classifier trains on: at least 1, and at least 1 left to score."""
    return min(max(1, round(n * train_fraction)), n - 1)


def _split(n: int, train_fraction: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=g)
    k = _train_count(n, train_fraction)
    return perm[:k], perm[k:]


def c2st_accuracy(a: Tensor, b: Tensor, seed: int = 0, train_fraction: float = 0.5, steps: int = 100,
                  batch_size: int = 32, lr: float = 2e-3) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy of telling ``a`` from ``b``.

    Args:
        a, b: two sets of equal size ``(N, 3, H, W)`` (balanced classes; ``N >= 2``).
        seed: seeds the split, the initial weights and the batch order.
        train_fraction: share of each set the classifier is trained on; it is scored on the rest.
        steps: Adam steps on binary cross-entropy, at most :data:`C2ST_MAX_EPOCHS` passes over the
            training split (the cost does not grow with the set size).
        batch_size: images per step, drawn from successive seeded shuffles of the training split.
        lr: Adam's learning rate.

    Returns:
        Accuracy on the held-out images of both sets (0.5: indistinguishable, 1.0: always told apart).
    """
    a, b = _check_images(a, "a"), _check_images(b, "b")
    if a.shape != b.shape or a.shape[0] < 2:
        raise HistganError(f"a and b must be balanced sets of one shape with at least 2 images each, "
                           f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise HistganError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < train_fraction < 1.0:
        raise HistganError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")
    if max(a.shape[-2:]) > C2ST_MAX_SIZE:
        size = [max(1, s * C2ST_MAX_SIZE // max(a.shape[-2:])) for s in a.shape[-2:]]
        a, b = nnf.interpolate(a, size=size, mode="area"), nnf.interpolate(b, size=size, mode="area")
    g = torch.Generator().manual_seed(seed)
    (tr_a, te_a), (tr_b, te_b) = _split(len(a), train_fraction, g), _split(len(b), train_fraction, g)
    x_train, x_test = torch.cat((a[tr_a], b[tr_b])), torch.cat((a[te_a], b[te_b]))
    y_train = torch.cat((torch.zeros(len(tr_a)), torch.ones(len(tr_b))))
    y_test = torch.cat((torch.zeros(len(te_a)), torch.ones(len(te_b))))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = min(steps, C2ST_MAX_EPOCHS * -(-len(x_train) // batch_size))
    for idx in _batches(len(x_train), batch_size, steps, g):
        loss = nnf.binary_cross_entropy_with_logits(net(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        _precise_batch_norm(net, x_train)
        return float(((net(x_test) > 0).float() == y_test).float().mean())


def c2st_null_sd(n: int, train_fraction: float = 0.5) -> float:
    """Standard deviation of :func:`c2st_accuracy` between two indistinguishable sets of ``n`` images each.

    The classifier is scored on the ``m = n - k`` held-out images of each set (``k`` trained on, as
    :func:`c2st_accuracy` splits them), ``2 m`` in all; when it can only guess, each is right with
    probability 1/2 independently, so the accuracy is a binomial proportion with standard deviation
    ``sqrt(0.25 / (2 m)) = 0.5 / sqrt(2 m)``. Two accuracies closer than about twice this cannot be told
    apart by one run of the test.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise HistganError(f"n must be an integer >= 2 (images per set), got {n!r}")
    if not 0.0 < train_fraction < 1.0:
        raise HistganError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")
    return 0.5 / float(np.sqrt(2 * (n - _train_count(n, train_fraction))))


def _batches(n: int, batch_size: int, steps: int, g: torch.Generator) -> list[Tensor]:
    """``steps`` index batches, cut from successive seeded permutations of ``range(n)``."""
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(-(-steps * batch_size // n))])
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def _precise_batch_norm(net: nn.Module, x: Tensor) -> None:
    """Batch-norm statistics of the whole training split (one pass), then evaluation mode.

    A few dozen steps leave the running averages far from the data; the test then sees the
    training set's exact statistics instead.
    """
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch = the exact statistics
    net.train()(x)
    net.eval()


def fill_background(images: Tensor, masks: Tensor, fill: float = 0.0) -> Tensor:
    """Every pixel outside each image's mask set to one shared grey ``fill`` (model space): same shape.

    Before a foreground-only realism score, generated and real images alike, so that neither the
    background a model paints nor the real photographs' backgrounds enter the comparison.
    """
    images = _check_images(images, "images")
    if not isinstance(masks, Tensor) or masks.shape != (images.shape[0], 1, *images.shape[-2:]):
        got = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise HistganError(f"masks must have shape {(images.shape[0], 1, *images.shape[-2:])}, got {got}")
    return torch.where(masks.cpu() != 0, images, torch.full_like(images, fill))
