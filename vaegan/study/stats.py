"""Mean and t-interval over seeds: the noise band every verdict is judged against."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _stats


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` per-seed values with a two-sided t confidence interval [lo, hi].

    With fewer than two finite values there is no spread to judge noise by: the interval is
    (-inf, inf), so no rule can decide on it and the verdict is inconclusive.
    """

    mean: float
    lo: float
    hi: float
    n: int
    values: tuple[float, ...] = ()

    def text(self, fmt: str = ".3g") -> str:
        if self.n == 0:
            return "n/a"
        if not (math.isfinite(self.hi) and self.n > 1):
            return f"{self.mean:{fmt}} (n={self.n}, no interval)"
        return f"{self.mean:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}] (n={self.n})"


def t_interval(values: Sequence[float], confidence: float = 0.95, log: bool = False) -> Interval:
    """Mean ± t_{n-1} · s/√n of the finite ``values``; ``log`` does it on log values
    (for ratios, which are skewed) and maps mean and bounds back (a geometric mean)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if log:
        xs = [math.log(v) for v in xs if v > 0]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    mean = sum(xs) / n
    if n < 2:
        lo, hi = -math.inf, math.inf
    else:
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = float(_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    if log:
        mean, lo, hi = math.exp(mean), _exp(lo), _exp(hi)
        xs = [math.exp(x) for x in xs]
    return Interval(mean, lo, hi, n, tuple(xs))


def _exp(x: float) -> float:
    if x == math.inf:
        return math.inf
    return 0.0 if x == -math.inf else math.exp(x)
