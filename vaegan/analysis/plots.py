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
    GRAD_TERMS,
    SMOOTH_FRAC,
    grad_means,
    last_step_before,
    smooth,
)
from vaegan.analysis.runs import Run, Series


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


def draw(ax: Axes, s: Series, label: str, color: str | None = None) -> None:
    """Raw curve faint, smoothed curve solid (GAN losses are noisy)."""
    sm = smooth(s, SMOOTH_FRAC)
    (line,) = ax.plot(sm.x, sm.y, label=label, color=color, lw=1.4)
    if len(s) > len(sm) or not np.array_equal(s.y, sm.y):
        ax.plot(s.x, s.y, color=line.get_color(), alpha=0.25, lw=0.7)


def gan_line(ax: Axes, gan_start: float | None, label: bool = True) -> None:
    if gan_start is not None:
        ax.axvline(gan_start, color="crimson", ls="--", lw=1, label="gan_start" if label else None)


def panel(ax: Axes, run: Run, names: Sequence[str], title: str, log: bool | None = None) -> bool:
    """Plot the logged ones of `names` and gan_start; log y where it helps. False if none."""
    found = [(n, s) for n in names if (s := run.get(n)) is not None]
    ax.set_title(title, fontsize=10)
    if not found:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        return False
    for name, s in found:
        draw(ax, s, name)
    gan_line(ax, run.gan_start)
    if helps_log([s.y for _, s in found]) if log is None else log:
        log_y(ax)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return True


def plot_kl_curves(run: Run, path: Path) -> Path | None:
    """C1/C2/G1: KL and its parts with β (twin axis), the weighted terms of the generator loss
    (what the optimizer trades off), reconstruction, and the adversarial game."""
    if run.get("train/kl") is None:
        return None
    fig, (ax_kl, ax_terms, ax_rec, ax_adv) = new_figure(4, 1, (9, 12))
    kl_names = ["train/kl", "train/kl_mu", "train/kl_var"]
    panel(ax_kl, run, kl_names, "KL (nats/sample): total, μ² part, variance part")
    draw_control(ax_kl, run, kl_names[:1])
    beta = run.get("train/beta")
    if beta is not None:
        twin = ax_kl.twinx()
        twin.plot(beta.x, beta.y, color="gray", lw=1, ls=":", label="β (train/beta)")
        twin.set_ylabel("β")
        twin.legend(fontsize=7, loc="lower right")
    panel(
        ax_terms,
        run,
        [
            "train/rec",
            "train/perceptual_weighted",
            "train/kl_weighted",
            "train/g_adv_weighted",
            "train/loss",
        ],
        "generator loss terms as weighted in the total (β·KL vs recon)",
    )
    panel(ax_rec, run, ["train/rec", "val/rec", "train/perceptual", "train/nll"], "reconstruction")
    panel(
        ax_adv, run, ["train/g_adv", "train/d_loss", "train/adv_weight"], "adversarial", log=False
    )
    ax_adv.set_xlabel(run.x_name)
    fig.suptitle(f"{run.name}: KL and loss terms")
    return save(fig, path)


def draw_control(ax: Axes, run: Run, names: Sequence[str]) -> None:
    """The no-GAN branch's curves of ``names``, dashed in the colours of the GAN run's."""
    if run.control is None:
        return
    colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
    for name in names:
        s = run.control.get(name)
        if s is not None:
            sm = smooth(s, SMOOTH_FRAC)
            ax.plot(sm.x, sm.y, ls="--", lw=1.4, color=colors.get(name), label=f"{name} (no GAN)")
    ax.legend(fontsize=7, loc="best")


GAN_CONTROL_PANELS = (
    (("train/kl",), "KL (nats/sample)"),
    (("train/kl_mu", "train/kl_var"), "KL's μ² part and variance part"),
    (("latent/logvar_mean", "latent/logvar_min"), "log σ²: mean and min"),
    (("train/rec", "val/rec"), "reconstruction"),
)


def plot_gan_control(run: Run, path: Path) -> Path | None:
    """G1/G3/W1 on the pair: each curve with the GAN (solid) and without it (dashed), forked at
    gan_start from the same checkpoint; the gap after the fork is the GAN's effect."""
    if run.control is None or run.get("train/kl") is None:
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
    names = ["latent/mu_mean", "latent/mu_std", "latent/logvar_mean", "latent/var_mean"]
    if all(run.get(n) is None for n in names):
        return None
    fig, (ax_mu, ax_lv, ax_units) = new_figure(3, 1, (9, 9))
    panel(ax_mu, run, ["latent/mu_mean", "latent/mu_std"], "posterior mean μ", log=False)
    panel(
        ax_lv,
        run,
        ["latent/logvar_mean", "latent/logvar_min", "latent/logvar_max"],
        "log σ² (dotted: clamp bounds)",
        log=False,
    )
    for bound in run.logvar_bounds:
        if bound is not None:
            ax_lv.axhline(bound, color="k", ls=":", lw=1)
    var = run.get("latent/var_mean")
    if var is not None:
        twin = ax_lv.twinx()
        twin.plot(var.x, var.y, color="purple", lw=1, alpha=0.7, label="latent/var_mean")
        if helps_log([var.y]):
            log_y(twin)
        twin.set_ylabel("σ² mean")
        twin.legend(fontsize=7, loc="lower right")
    panel(
        ax_units,
        run,
        ["latent/clamp_frac", "latent/active_units", "latent/collapsed_dims"],
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
    lo = min(s.x[0] for _, s in dims)
    hi = max(s.x[-1] for _, s in dims)
    grid = np.linspace(lo, hi, min(400, max(len(s) for _, s in dims)))
    image = np.array([np.interp(grid, s.x, s.y) for _, s in dims])
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
    x0, x1 = run.x_range
    gs = run.gan_start
    periods = (
        [("before GAN", x0, last_step_before(gs)), ("after GAN", gs, x1)]
        if gs is not None and x0 < gs < x1
        else [("whole run", x0, x1)]
    )
    means = [(label, grad_means(run, lo, hi)) for label, lo, hi in periods]
    terms = [t for t in GRAD_TERMS if any(t in m for _, m in means)]
    if not terms:
        return None
    fig, (ax_bar, ax_share) = new_figure(1, 2, (13, 4.5))
    width = 0.8 / (2 * len(means))
    pos = np.arange(len(terms))
    for i, (label, m) in enumerate(means):
        for j, part in enumerate(("encoder", "decoder")):
            vals = [m.get(t, (np.nan, np.nan))[j] for t in terms]
            ax_bar.bar(
                pos + (2 * i + j - len(means) + 0.5) * width,
                vals,
                width,
                label=f"{part}, {label}",
                hatch="//" if part == "decoder" else None,
                color=f"C{i}",
                alpha=0.6 if part == "decoder" else 1.0,
            )
    ax_bar.set_xticks(pos, terms)
    ax_bar.set_yscale("log")
    ax_bar.set_ylabel("mean gradient norm")
    ax_bar.legend(fontsize=7)
    ax_bar.set_title("gradient norm per term")
    for term in terms:
        enc, dec = run.get(f"grad/{term}/encoder"), run.get(f"grad/{term}/decoder")
        if enc is not None and dec is not None:
            d = np.interp(enc.x, dec.x, dec.y)
            draw(ax_share, Series(enc.x, enc.y / np.maximum(enc.y + d, 1e-30)), term)
    gan_line(ax_share, gs)
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
    written = [fn(run, Path(out_dir) / name) for name, fn in PLOTS.items()]
    return [p for p in written if p is not None]
