"""The training batch stream: one DataLoader per run, reshuffled per epoch, resumable at any step.

Epoch ``e`` visits the training set in the order ``randperm(len, seed · 1_000_003 + e)``; with
``world_size`` processes each rank takes every ``world_size``-th item of the first
``per_epoch · batch_size · world_size`` (an epoch's remainder is dropped), and the pairing of the
dataset (:meth:`histgan.data.folders.UnpairedImageFolder.set_epoch`) is that of ``e``. The position in the
stream is a function of the step alone, which is what makes resuming exact.

The DataLoader is built once per run (worker processes, when ``num_workers > 0``, start once and
persist): its batch sampler yields ``(epoch, index)`` keys forever, and each key sets the epoch of
the loading process's own copy of the dataset before reading the item, so workers reshuffle too.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from histgan.errors import HistganError

__all__ = ["default_num_workers", "EpochBatchSampler", "training_batches", "to_device"]


def default_num_workers(device: torch.device) -> int:
    """DataLoader workers when the config leaves it open: 4 on CUDA (decoding PNGs overlaps the GPU's
    work), 0 on CPU (a worker would take a core from the training threads)."""
    return 4 if device.type == "cuda" else 0


class EpochBatchSampler(Sampler):
    """Batches of ``(epoch, index)`` keys from step ``start`` on, epoch after epoch, without end.

    Args:
        n: items in the dataset. batch_size: items per batch and rank. seed: seeds the orders.
        rank, world_size: this process's share. start: the first step (resuming).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.per_epoch = n // (batch_size * world_size)
        if self.per_epoch == 0:
            raise HistganError(f"the training set has {n} items, fewer than batch_size {batch_size} × "
                               f"{world_size} process(es); lower --batch-size")
        self.start = start

    def epoch_order(self, epoch: int) -> list[int]:
        """This rank's items of ``epoch``, in order (``per_epoch · batch_size`` of them)."""
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        used = order[: self.per_epoch * self.batch_size * self.world_size]
        return used[self.rank:: self.world_size].tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            mine, b = self.epoch_order(epoch), self.batch_size
            for i in range(offset, self.per_epoch):
                yield [(epoch, k) for k in mine[i * b:(i + 1) * b]]
            epoch, offset = epoch + 1, 0


class _EpochItems(Dataset):
    """``dataset[(epoch, index)]``: set the epoch (this process's copy), then read the item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def training_batches(dataset: Dataset, batch_size: int, seed: int, start: int = 0, rank: int = 0,
                     world_size: int = 1, num_workers: int = 0, pin_memory: bool = False) -> Iterator[dict[str, Any]]:
    """The run's batches from step ``start`` on, from one DataLoader (module docstring).

    Args:
        dataset: items ``{"x", "y", "x_mask", "y_mask", ...}``; ``set_epoch(e)`` if it reshuffles pairs.
        batch_size: items per batch and rank. seed: the run's seed. start: the first step.
        rank, world_size: DDP placement. num_workers: loader processes (persistent).
        pin_memory: page-locked batches (CUDA: asynchronous copies to the GPU).

    Raises:
        HistganError: fewer items than ``batch_size · world_size``.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, rank, world_size, start)
    loader = DataLoader(_EpochItems(dataset), batch_sampler=sampler, num_workers=num_workers,
                        persistent_workers=num_workers > 0, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(seed))  # own generator: no draw from the global RNG
    return iter(loader)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of ``batch`` on ``device`` (non-blocking from pinned memory; channels-last on CUDA)."""
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return {k: v.to(device, non_blocking=True).contiguous(memory_format=fmt) if isinstance(v, Tensor) else v
            for k, v in batch.items()}
