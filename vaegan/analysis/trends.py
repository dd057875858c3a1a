"""Robust trend primitives on a `Series`: smoothing, window slopes, levels, relative change."""

from __future__ import annotations

import numpy as np

from vaegan.analysis.runs import Series

_BINNED_MAX = 2000  # smoothing works on at most this many (bin-averaged) points
SMOOTH_FRAC = 0.05  # running-median window, fraction of the points (diagnosis and plots)



def smooth(series: Series, frac: float) -> Series:
    """Running median over `frac` of the points (after bin-averaging very long series)."""
    x, y = series.x, series.y
    if len(x) > _BINNED_MAX:
        bins = np.array_split(np.arange(len(x)), _BINNED_MAX)
        x = np.array([x[in_bin].mean() for in_bin in bins])
        y = np.array([y[in_bin].mean() for in_bin in bins])
    width = max(1, int(round(frac * len(x)))) | 1  # odd: the window is centred on its point
    if width < 3:
        return Series(x, y)
    # NaN padding: the windows shrink at the ends
    padded = np.pad(y.astype(float), width // 2, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return Series(x, np.nanmedian(windows, axis=1))


def fit_slope(series: Series, lo: float, hi: float, min_points: int = 3) -> float | None:
    """Least-squares slope (units per step) of the points in [lo, hi]; None if too few."""
    window = series.between(lo, hi)
    if len(window) < max(2, min_points) or np.ptp(window.x) == 0:
        return None
    return float(np.polyfit(window.x, window.y, 1)[0])


def level(series: Series, lo: float, hi: float) -> float:
    """Mean in [lo, hi]; the interpolated value at the window's centre when it holds no point."""
    window = series.between(lo, hi)
    if len(window):
        return float(window.y.mean())
    return float(np.interp((lo + hi) / 2, series.x, series.y))


def rel_change(series: Series, lo: float, hi: float, min_points: int) -> float | None:
    """Slope x window length / level: the fraction of its level a series moves over [lo, hi]."""
    slope = fit_slope(series, lo, hi, min_points)
    if slope is None:
        return None
    return slope * (hi - lo) / max(abs(level(series, lo, hi)), 1e-12)
