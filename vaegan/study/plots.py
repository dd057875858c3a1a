"""One figure per claim: each arm's curve (mean over seeds, band = min..max over seeds)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from vaegan.analysis.diagnose import SMOOTH_FRAC, smooth
from vaegan.analysis.plots import helps_log, log_y, new_figure, save
from vaegan.analysis.runs import Run
from vaegan.study.config import Claim

GRID_POINTS = 200


def seed_band(runs: list[Run], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray] | None:
    """(x, mean, min, max) of the smoothed curves of `runs`, on the steps they all cover."""
    curves = [smooth(s, SMOOTH_FRAC) for r in runs if (s := r.get(metric)) is not None]
    if not curves:
        return None
    lo, hi = max(c.x[0] for c in curves), min(c.x[-1] for c in curves)
    if hi <= lo:
        c = curves[0]
        return c.x, c.y, c.y, c.y
    x = np.linspace(lo, hi, min(GRID_POINTS, max(len(c) for c in curves)))
    ys = np.array([np.interp(x, c.x, c.y) for c in curves])
    return x, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


def plot_claim(claim: Claim, runs_by_arm: dict[str, list[Run]], path: Path) -> Path | None:
    """Panels = the claim's plot metrics; lines = its plot arms; dashed = gan_start."""
    if not claim.plot_metrics or not claim.plot_arms:
        return None
    n = len(claim.plot_metrics)
    fig, axes = new_figure(n, 1, (8, 2.8 * n))
    for ax, metric in zip(axes, claim.plot_metrics, strict=True):
        ys = []
        for i, arm in enumerate(claim.plot_arms):
            runs = runs_by_arm.get(arm, [])
            band = seed_band(runs, metric)
            if band is None:
                continue
            x, mean, lo, hi = band
            color = f"C{i % 10}"
            ax.plot(x, mean, color=color, lw=1.4, label=f"{arm} (n={len(runs)})")
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
            ys.append(mean)
            gs = runs[0].gan_start if runs else None
            if gs is not None:
                ax.axvline(gs, color=color, ls="--", lw=0.8)
        if helps_log(ys):
            log_y(ax)
        ax.set_title(metric + ("" if ys else " (not logged)"), fontsize=10)
        ax.grid(alpha=0.3)
        if ys:
            ax.legend(fontsize=7)
    axes[-1].set_xlabel("generator step")
    fig.suptitle(textwrap.fill(f"{claim.id}: {claim.text}", 100), fontsize=9)
    return save(fig, path)
