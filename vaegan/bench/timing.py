"""Interleaved repeats and the statistics reported for them.

Variants run alternately (A B, B A, A B, ...), so load from other processes on a shared
machine lands on both sides of a ratio; each ratio is taken within a repeat (paired), and
the median and the min-max range of those paired ratios are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch

Variant = TypeVar("Variant")


# Asked once: on a CUDA build without a GPU, ``is_available`` costs milliseconds per call.
_CUDA = torch.cuda.is_available()


def sync() -> None:
    """Wait for queued GPU work, so wall-clock stamps mean finished work."""
    if _CUDA and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def now() -> float:
    sync()
    return time.perf_counter()


def interleaved(
    variants: Mapping[Variant, Callable[[], float]], repeats: int
) -> dict[Variant, list[float]]:
    """Each variant's measurement (seconds per batch) per repeat, run in alternating order."""
    results: dict[Variant, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
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
        paired = [a_seconds / b_seconds for a_seconds, b_seconds in zip(a, b, strict=True)]
        return cls(
            statistics.median(a), statistics.median(b), statistics.median(paired),
            min(paired), max(paired),
        )
