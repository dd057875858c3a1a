"""The plain PyTorch loop: a step function over an iterator of batches, nothing else."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from vaegan.bench.players import Players
from vaegan.bench.steps import Step
from vaegan.bench.timing import now
from vaegan.core.module import batch_images


def cycle(loader: Iterable, device: torch.device) -> Iterator[Tensor]:
    """Image batches from ``loader`` forever (a new epoch when one ends), on ``device``."""
    for batch in itertools.chain.from_iterable(itertools.repeat(loader)):
        yield batch_images(batch).to(device, non_blocking=True)


class LoopBench:
    """One variant kept alive across repeats: warmed up once, then ``steps`` batches per call.

    Seconds are measured from the end of one batch to the end of the next, fetching included,
    the same window the Lightning timer uses; ``data_share`` is the part spent in ``next``.
    """

    def __init__(
        self, players: Players, batches: Iterator[Tensor], step: Step, warmup: int, steps: int
    ) -> None:
        self.players, self.batches, self.step, self.steps = players, batches, step, steps
        self.index = 0  # the generator step the next batch trains
        self.timed, self.waited, self.elapsed = 0, 0.0, 0.0
        self.run(warmup)
        self.timed, self.waited, self.elapsed = 0, 0.0, 0.0  # the warm-up does not count

    def run(self, n: int) -> float:
        """Seconds per batch over ``n`` batches."""
        start = now()
        for _ in range(n):
            fetch = time.perf_counter()
            x = next(self.batches)
            self.waited += time.perf_counter() - fetch
            self.step(self.players, x, self.index)
            self.index += 1
        seconds = now() - start
        self.timed += n
        self.elapsed += seconds
        return seconds / max(n, 1)

    def __call__(self) -> float:
        return self.run(self.steps)

    @property
    def data_share(self) -> float:
        """Fraction of the timed seconds spent waiting for batches."""
        return self.waited / self.elapsed if self.elapsed else float("nan")
