"""Interleaved repeats and the statistics reported for them.

Variants run alternately (A B, B A, A B, ...), so load from other processes on a shared
machine lands on both sides of a ratio; each ratio is taken within a repeat (paired), and
the median and the min-max range of those paired ratios are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch

K = TypeVar("K")


# Asked once: on a CUDA build without a GPU, ``is_available`` costs milliseconds per call.
_CUDA = torch.cuda.is_available()


def sync() -> None:
    """Wait for queued GPU work, so wall-clock stamps mean finished work."""
    if _CUDA and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def now() -> float:
    sync()
    return time.perf_counter()


@contextmanager
def stopwatch(out: list[float]) -> Iterator[None]:
    """Appends the seconds the block took."""
    start = now()
    yield
    out.append(now() - start)


def interleaved(variants: Mapping[K, Callable[[], float]], repeats: int) -> dict[K, list[float]]:
    """Each variant's measurement (seconds per batch) per repeat, run in alternating order."""
    results: dict[K, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(variants[name]())
    return results


@dataclass(frozen=True)
class Ratio:
    """``a / b`` from paired repeats: median seconds of each side and the ratio's spread."""

    a: float
    b: float
    ratio: float
    low: float
    high: float

    @classmethod
    def of(cls, a: list[float], b: list[float]) -> Ratio:
        paired = [x / y for x, y in zip(a, b, strict=True)]
        return cls(
            statistics.median(a), statistics.median(b), statistics.median(paired),
            min(paired), max(paired),
        )

    def inverted(self) -> Ratio:
        """``b / a`` (a speed-up of a over b)."""
        return Ratio(self.b, self.a, 1 / self.ratio, 1 / self.high, 1 / self.low)
