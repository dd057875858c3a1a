"""One figure per claim and regime: each arm's curve, mean over seeds ± its t-interval.

The band is the confidence interval of the mean (the same t-interval the rules use), not the
min-max over seeds; the title names the regime, so a figure is never read out of context.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from scipy import stats as _stats

from vaegan.analysis.plots import helps_log, log_y, new_figure, save
from vaegan.analysis.runs import Run
from vaegan.analysis.trends import SMOOTH_FRAC, smooth
from vaegan.study.config import Claim

GRID_POINTS = 200


def seed_band(runs: list[Run], metric: str, confidence: float = 0.95
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, mean, lo, hi) of the smoothed curves of `runs` on the steps they all cover; lo/hi:
    the t-interval of the mean over seeds at each step (= mean with one seed)."""
    curves = [smooth(series, SMOOTH_FRAC)
              for run in runs if (series := run.get(metric)) is not None]
    if not curves:
        return None
    lo, hi = max(curve.x[0] for curve in curves), min(curve.x[-1] for curve in curves)
    if hi <= lo:
        only = curves[0]
        return only.x, only.y, only.y, only.y
    x = np.linspace(lo, hi, min(GRID_POINTS, max(len(curve) for curve in curves)))
    ys = np.array([np.interp(x, curve.x, curve.y) for curve in curves])
    mean = ys.mean(axis=0)
    seeds = len(curves)
    if seeds < 2:
        return x, mean, mean, mean
    t_quantile = float(_stats.t.ppf(0.5 + confidence / 2, seeds - 1))
    half = t_quantile * ys.std(axis=0, ddof=1) / np.sqrt(seeds)
    return x, mean, mean - half, mean + half


def plot_claim(claim: Claim, regime_label: str, runs_by_arm: dict[str, list[Run]], path: Path,
               confidence: float = 0.95) -> Path | None:
    """Panels = the claim's plot metrics; lines = its plot arms; dashed = gan_start."""
    if not claim.plot_metrics or not runs_by_arm:
        return None
    panels = len(claim.plot_metrics)
    fig, axes = new_figure(panels, 1, (8, 2.8 * panels))
    for ax, metric in zip(axes, claim.plot_metrics, strict=True):
        ys = []
        for i, (arm, runs) in enumerate(runs_by_arm.items()):
            band = seed_band(runs, metric, confidence)
            if band is None:
                continue
            x, mean, lo, hi = band
            color = f"C{i % 10}"
            ax.plot(x, mean, color=color, lw=1.4, label=f"{arm} (n={len(runs)})")
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
            ys.append(mean)
            gan_start = runs[0].gan_start if runs else None
            if gan_start is not None:
                ax.axvline(gan_start, color="0.4", ls="--", lw=0.8)
        if helps_log(ys):
            log_y(ax)
        ax.set_title(metric + ("" if ys else " (not logged)"), fontsize=10)
        ax.grid(alpha=0.3)
        if ys:
            ax.legend(fontsize=7)
    axes[-1].set_xlabel(f"generator step (band: {confidence:.0%} CI of the mean over seeds;"
                        " dashed: gan_start)")
    title = f"{claim.id} [{regime_label}]: {claim.text}"
    fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    return save(fig, path)
