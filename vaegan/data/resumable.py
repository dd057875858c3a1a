"""A training DataLoader whose position Lightning can checkpoint, for an exact resume.

A plain shuffled DataLoader draws its order (and its worker seeds) from the global torch RNG
at the start of every epoch, and Lightning resumes a mid-epoch checkpoint at the *start* of a
new iterator. Here the order is a function of (seed, epoch) only, as in Lightning's own
distributed sampler, the loader reports (epoch, batches served) through ``state_dict`` (which
Lightning stores in every checkpoint and hands back on resume), and a resumed loader skips the
served batches by index, without loading them. A data set with ``set_epoch(epoch, seed)``
(``PatchDataset``) draws its augmentation from (seed, epoch, index) as well, so a resumed run
sees the very crops and flips the uninterrupted run saw. With ``persistent_workers`` the worker
copies of the data set keep the epoch they started with; the embedded patches use no workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def training_seed() -> int:
    """The run's seed, as ``seed_everything`` leaves it (Lightning's samplers read it too)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def _world() -> tuple[int, int]:
    """(number of processes, this rank), (1, 0) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """This rank's share of a permutation seeded by (seed, epoch); can start mid-epoch.

    A ``DistributedSampler`` on every world size (1 included), so Lightning keeps it under DDP
    instead of swapping in its own, and calls ``set_epoch`` on it every epoch.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        replicas, rank = _world()
        super().__init__(
            dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0  # samples of this epoch to skip, once

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])


class ResumableLoader(DataLoader):
    """Shuffled training batches (drop_last) with ``state_dict``: {"epoch", "batches"}."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=EpochSampler(dataset, seed=seed),
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),  # worker seeds: not the global RNG
            **kwargs,
        )
        self.seed = seed
        self._batches = 0  # served in the current epoch
        self._resume_at = 0  # batches to skip at the next iteration (after load_state_dict)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(sampler.epoch, self.seed)
        self._batches, self._resume_at = self._resume_at, 0
        sampler.start = self._batches * int(self.batch_size or 1)
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": self._batches}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved after the epoch's last batch: the next one starts
            epoch, batches = epoch + 1, 0
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self._resume_at = batches
