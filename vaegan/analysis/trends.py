"""Robust trend primitives on a `Series`: smoothing, window slopes, levels, relative change."""

from __future__ import annotations

import numpy as np

from vaegan.analysis.runs import Series

_BINNED_MAX = 2000  # smoothing works on at most this many (bin-averaged) points
SMOOTH_FRAC = 0.05  # running-median window, fraction of the points (diagnosis and plots)



def smooth(s: Series, frac: float) -> Series:
    """Running median over `frac` of the points (after bin-averaging very long series)."""
    x, y = s.x, s.y
    if len(x) > _BINNED_MAX:
        bins = np.array_split(np.arange(len(x)), _BINNED_MAX)
        x = np.array([x[b].mean() for b in bins])
        y = np.array([y[b].mean() for b in bins])
    k = max(1, int(round(frac * len(x)))) | 1
    if k < 3:
        return Series(x, y)
    padded = np.pad(y.astype(float), k // 2, constant_values=np.nan)  # windows shrink at the ends
    return Series(x, np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, k), axis=1))


def fit_slope(s: Series, lo: float, hi: float, min_points: int = 3) -> float | None:
    """Least-squares slope (units per step) of the points in [lo, hi]; None if too few."""
    w = s.between(lo, hi)
    if len(w) < max(2, min_points) or np.ptp(w.x) == 0:
        return None
    return float(np.polyfit(w.x, w.y, 1)[0])


def level(s: Series, lo: float, hi: float) -> float:
    """Mean in [lo, hi]; the interpolated value at the window's centre when it holds no point."""
    w = s.between(lo, hi)
    if len(w):
        return float(w.y.mean())
    return float(np.interp((lo + hi) / 2, s.x, s.y))


def rel_change(s: Series, lo: float, hi: float, min_points: int) -> float | None:
    """Slope x window length / level: the fraction of its level a series moves over [lo, hi]."""
    slope = fit_slope(s, lo, hi, min_points)
    if slope is None:
        return None
    return slope * (hi - lo) / max(abs(level(s, lo, hi)), 1e-12)
