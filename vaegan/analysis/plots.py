"""Diagnosis figures (PNG). Figures are built on matplotlib's Agg canvas without pyplot, so no
global backend is touched (safe inside notebooks, servers and training processes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from vaegan.analysis.diagnose import (
    SMOOTH_FRAC,
    grad_means,
    last_step_before,
    smooth,
)
from vaegan.analysis.runs import Run, Series
from vaegan.vocab import metric_names as metric


def new_figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def helps_log(values: Sequence[np.ndarray]) -> bool:
    """Log scale when most values are positive and those span more than a factor of 20
    (zeros, e.g. β·KL during a β=0 warm-up, are then left out of the plot)."""
    ys = np.concatenate([np.asarray(v) for v in values]) if values else np.empty(0)
    pos = ys[ys > 0]
    return bool(len(pos) >= 0.5 * len(ys) > 0 and pos.max() / pos.min() > 20)


def log_y(ax: Axes) -> None:
    ax.set_yscale("log", nonpositive="mask")


def draw(ax: Axes, series: Series, label: str, color: str | None = None) -> None:
    """Raw curve faint, smoothed curve solid (GAN losses are noisy)."""
    smoothed = smooth(series, SMOOTH_FRAC)
    (line,) = ax.plot(smoothed.x, smoothed.y, label=label, color=color, lw=1.4)
    if len(series) > len(smoothed) or not np.array_equal(series.y, smoothed.y):
        ax.plot(series.x, series.y, color=line.get_color(), alpha=0.25, lw=0.7)


def gan_line(ax: Axes, gan_start: float | None, label: bool = True) -> None:
    if gan_start is not None:
        ax.axvline(gan_start, color="crimson", ls="--", lw=1, label="gan_start" if label else None)


def panel(ax: Axes, run: Run, names: Sequence[str], title: str, log: bool | None = None) -> bool:
    """Plot the logged ones of `names` and gan_start; log y where it helps. False if none."""
    found = [(name, series) for name in names if (series := run.get(name)) is not None]
    ax.set_title(title, fontsize=10)
    if not found:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return False
    for name, series in found:
        draw(ax, series, name)
    gan_line(ax, run.gan_start)
    if helps_log([series.y for _, series in found]) if log is None else log:
        log_y(ax)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return True


def plot_kl_curves(run: Run, path: Path) -> Path | None:
    """C1/C2/G1: KL and its parts with β (twin axis), the weighted terms of the generator loss
    (what the optimizer trades off), reconstruction, and the adversarial game."""
    if run.get(metric.TRAIN_KL) is None:
        return None
    pushes = [metric.grad(term, metric.KL_PUSH) for term in metric.GRAD_TERMS]
    has_push = any(run.get(name) is not None for name in pushes)
    fig, axes = new_figure(5 if has_push else 4, 1, (9, 15 if has_push else 12))
    ax_kl, ax_terms, ax_rec, ax_adv = axes[:4]
    kl_names = [metric.TRAIN_KL, metric.TRAIN_KL_MU, metric.TRAIN_KL_VAR]
    panel(ax_kl, run, kl_names, "KL (nats/sample): total, μ² part, variance part")
    draw_control(ax_kl, run, kl_names[:1])
    beta = run.get(metric.TRAIN_BETA)
    if beta is not None:
        twin = ax_kl.twinx()
        twin.plot(beta.x, beta.y, color="gray", lw=1, ls=":", label=f"β ({metric.TRAIN_BETA})")
        twin.set_ylabel("β")
        twin.legend(fontsize=7, loc="lower right")
    panel(
        ax_terms,
        run,
        [
            metric.TRAIN_REC,
            metric.TRAIN_PERCEPTUAL_WEIGHTED,
            metric.TRAIN_KL_WEIGHTED,
            metric.TRAIN_G_ADV_WEIGHTED,
            metric.TRAIN_LOSS,
        ],
        "generator loss terms as weighted in the total (β·KL vs recon)",
    )
    panel(ax_rec, run, [metric.TRAIN_REC, metric.VAL_REC, metric.TRAIN_PERCEPTUAL,
                        metric.TRAIN_NLL], "reconstruction")
    panel(ax_adv, run, [metric.TRAIN_G_ADV, metric.TRAIN_D_LOSS, metric.TRAIN_ADV_WEIGHT],
          "adversarial", log=False)
    if has_push:
        ax_push = axes[4]
        panel(ax_push, run, pushes, "KL push: first-order change of KL along each term's Adam"
              " step (nats per unit lr; > 0 pushes KL up)", log=False)
        ax_push.set_yscale("symlog", linthresh=push_linthresh(run, pushes))
        ax_push.axhline(0, color="black", lw=0.6)
    axes[-1].set_xlabel(run.x_name)
    fig.suptitle(f"{run.name}: KL and loss terms")
    return save(fig, path)


def push_linthresh(run: Run, names: Sequence[str]) -> float:
    """The symlog axis' linear range: a thousandth of the largest push, so both signs and
    terms orders of magnitude apart stay readable."""
    peaks = [float(np.abs(series.y).max()) for name in names
             if (series := run.get(name)) is not None and len(series)]
    peak = max(peaks, default=0.0)
    return peak * 1e-3 if peak > 0 else 1.0


def draw_control(ax: Axes, run: Run, names: Sequence[str]) -> None:
    """The no-GAN branch's curves of ``names``, dashed in the colours of the GAN run's."""
    if run.control is None:
        return
    colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
    for name in names:
        series = run.control.get(name)
        if series is not None:
            smoothed = smooth(series, SMOOTH_FRAC)
            ax.plot(smoothed.x, smoothed.y, ls="--", lw=1.4, color=colors.get(name),
                    label=f"{name} (no GAN)")
    ax.legend(fontsize=7, loc="best")


GAN_CONTROL_PANELS = (
    ((metric.TRAIN_KL,), "KL (nats/sample)"),
    ((metric.TRAIN_KL_MU, metric.TRAIN_KL_VAR), "KL's μ² part and variance part"),
    ((metric.LATENT_LOGVAR_MEAN, metric.LATENT_LOGVAR_MIN), "log σ²: mean and min"),
    ((metric.TRAIN_REC, metric.VAL_REC), "reconstruction"),
)


def plot_gan_control(run: Run, path: Path) -> Path | None:
    """G1/G3/W1 on the pair: each curve with the GAN (solid) and without it (dashed), forked at
    gan_start from the same checkpoint; the gap after the fork is the GAN's effect."""
    if run.control is None or run.get(metric.TRAIN_KL) is None:
        return None
    fig, axes = new_figure(len(GAN_CONTROL_PANELS), 1, (9, 3 * len(GAN_CONTROL_PANELS)))
    for ax, (names, title) in zip(axes, GAN_CONTROL_PANELS, strict=True):
        if panel(ax, run, names, f"{title}: solid with the GAN, dashed without"):
            draw_control(ax, run, names)
    axes[-1].set_xlabel(run.x_name)
    fig.suptitle(f"{run.name}: GAN run vs no-GAN control forked at {run.fork_step:.0f}")
    return save(fig, path)


def plot_latent_stats(run: Run, path: Path) -> Path | None:
    """C1/F3/G3: posterior μ and σ² statistics, with the log σ² clamp bounds."""
    names = [metric.LATENT_MU_MEAN, metric.LATENT_MU_STD, metric.LATENT_LOGVAR_MEAN,
             metric.LATENT_VAR_MEAN]
    if all(run.get(name) is None for name in names):
        return None
    fig, (ax_mu, ax_lv, ax_units) = new_figure(3, 1, (9, 9))
    panel(ax_mu, run, [metric.LATENT_MU_MEAN, metric.LATENT_MU_STD], "posterior mean μ",
          log=False)
    panel(
        ax_lv,
        run,
        [metric.LATENT_LOGVAR_MEAN, metric.LATENT_LOGVAR_MIN, metric.LATENT_LOGVAR_MAX],
        "log σ² (dotted: clamp bounds)",
        log=False,
    )
    for bound in run.logvar_bounds:
        if bound is not None:
            ax_lv.axhline(bound, color="k", ls=":", lw=1)
    var = run.get(metric.LATENT_VAR_MEAN)
    if var is not None:
        twin = ax_lv.twinx()
        twin.plot(var.x, var.y, color="purple", lw=1, alpha=0.7, label=metric.LATENT_VAR_MEAN)
        if helps_log([var.y]):
            log_y(twin)
        twin.set_ylabel("σ² mean")
        twin.legend(fontsize=7, loc="lower right")
    panel(
        ax_units,
        run,
        [metric.LATENT_CLAMP_FRAC, metric.LATENT_ACTIVE_UNITS, metric.LATENT_COLLAPSED_DIMS],
        "clamp fraction, active units, collapsed dims",
        log=False,
    )
    ax_units.set_xlabel(run.x_name)
    fig.suptitle(f"{run.name}: posterior statistics")
    return save(fig, path)


def plot_kl_per_dim(run: Run, path: Path) -> Path | None:
    """C2/C3: per-channel KL over time as a heatmap (collapsed channels show as dark rows)."""
    dims = run.kl_dims()
    if not dims:
        return None
    lo = min(series.x[0] for _, series in dims)
    hi = max(series.x[-1] for _, series in dims)
    grid = np.linspace(lo, hi, min(400, max(len(series) for _, series in dims)))
    image = np.array([np.interp(grid, series.x, series.y) for _, series in dims])
    fig, (ax,) = new_figure(1, 1, (9, 1.5 + 0.35 * len(dims)))
    norm = LogNorm(vmin=image.min(), vmax=image.max()) if helps_log([image.ravel()]) else None
    im = ax.imshow(
        image,
        aspect="auto",
        origin="lower",
        norm=norm,
        cmap="viridis",
        extent=(lo, hi, -0.5, len(dims) - 0.5),
        interpolation="nearest",
    )
    ax.set_yticks(range(len(dims)), [str(i) for i, _ in dims])
    ax.set_ylabel("latent channel")
    ax.set_xlabel(run.x_name)
    gan_line(ax, run.gan_start, label=False)
    fig.colorbar(im, ax=ax, label="KL (nats)")
    ax.set_title(f"{run.name}: KL per latent channel")
    return save(fig, path)


def plot_grad_shares(run: Run, path: Path) -> Path | None:
    """G2/G5: gradient norm of each loss term on encoder vs decoder, before/after gan_start."""
    first, last = run.x_range
    gan_start = run.gan_start
    periods = (
        [("before GAN", first, last_step_before(gan_start)), ("after GAN", gan_start, last)]
        if gan_start is not None and first < gan_start < last
        else [("whole run", first, last)]
    )
    means = [(label, grad_means(run, lo, hi)) for label, lo, hi in periods]
    terms = [term for term in metric.GRAD_TERMS if any(term in by_term for _, by_term in means)]
    if not terms:
        return None
    fig, (ax_bar, ax_share) = new_figure(1, 2, (13, 4.5))
    width = 0.8 / (2 * len(means))
    pos = np.arange(len(terms))
    for i, (label, by_term) in enumerate(means):
        for j, part in enumerate((metric.ENCODER, metric.DECODER)):
            vals = [by_term.get(term, (np.nan, np.nan))[j] for term in terms]
            ax_bar.bar(
                pos + (2 * i + j - len(means) + 0.5) * width,
                vals,
                width,
                label=f"{part}, {label}",
                hatch="//" if part == metric.DECODER else None,
                color=f"C{i}",
                alpha=0.6 if part == metric.DECODER else 1.0,
            )
    ax_bar.set_xticks(pos, terms)
    ax_bar.set_yscale("log")
    ax_bar.set_ylabel("mean gradient norm")
    ax_bar.legend(fontsize=7)
    ax_bar.set_title("gradient norm per term")
    for term in terms:
        encoder = run.get(metric.grad(term, metric.ENCODER))
        decoder = run.get(metric.grad(term, metric.DECODER))
        if encoder is not None and decoder is not None:
            decoder_y = np.interp(encoder.x, decoder.x, decoder.y)
            share = encoder.y / np.maximum(encoder.y + decoder_y, 1e-30)
            draw(ax_share, Series(encoder.x, share), term)
    gan_line(ax_share, gan_start)
    ax_share.set_ylim(0, 1)
    ax_share.set_ylabel("encoder / (encoder + decoder)")
    ax_share.set_xlabel(run.x_name)
    ax_share.legend(fontsize=7)
    ax_share.grid(alpha=0.3)
    ax_share.set_title("encoder share of each term's gradient")
    fig.suptitle(f"{run.name}: where each loss term's gradient goes")
    return save(fig, path)


PLOTS = {
    "kl_curves.png": plot_kl_curves,
    "latent_stats.png": plot_latent_stats,
    "kl_per_dim.png": plot_kl_per_dim,
    "grad_shares.png": plot_grad_shares,
    "gan_control.png": plot_gan_control,
}


def write_plots(run: Run, out_dir: Path) -> list[Path]:
    """All figures whose data were logged, as PNGs in `out_dir`."""
    written = [plot(run, Path(out_dir) / name) for name, plot in PLOTS.items()]
    return [path for path in written if path is not None]
