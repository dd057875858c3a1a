"""Is the plateau the GAN's doing? The GAN run against its no-GAN control, step by step.

With ``gan_control=true`` both branches start from the same checkpoint at ``gan_start`` and see
the same batches in the same order, so a difference between them at step t is the GAN's
effect at step t (plus the drift of two chaotic trajectories, which the windows average over).
One run alone cannot separate "KL flattened because the GAN switched on" from "KL flattened
on its own"; the pair can, and this module says which, with the numbers it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vaegan.analysis.runs import Run, Series
from vaegan.analysis.trends import fit_slope, level, smooth

GAN_FLATTENED = "the GAN flattened KL (the control keeps rising)"
FLATTENS_ANYWAY = "KL flattens without the GAN too"
PAIR_INCONCLUSIVE = "inconclusive"
NO_CONTROL = "no causal claim: no no-GAN control (train with gan_control=true)"

# Compared after the fork; train rows pair by step, val rows by validation step.
PAIRED = (
    "train/kl", "train/kl_mu", "train/kl_var",
    "latent/logvar_mean", "latent/logvar_min", "latent/clamp_frac",
    "train/rec", "train/perceptual",
    "val/rec", "val/lpips", "val/psnr", "val/kl",
)
# W1, paired: the GAN branch's reconstruction worse than the control's at the same steps.
_WORSE_IF_HIGHER = ("val/rec", "val/lpips")
_WORSE_IF_LOWER = ("val/psnr",)


@dataclass
class PairedRow:
    """One metric over one window: branch means, and the mean of per-step differences."""

    name: str
    lo: float
    hi: float
    gan: float
    control: float
    diff: float  # mean of (GAN - control) over the steps both logged
    ci95: float | None  # ±, from the per-step differences; None with < 3 pairs
    rel: float | None  # diff / |control mean|
    pairs: int


@dataclass
class GanEffect:
    """The verdict on the plateau, with its sentences, evidence and paired differences."""

    verdict: str
    explanation: list[str] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)
    rows: list[PairedRow] = field(default_factory=list)
    gan_overweighted: bool = False


def paired_row(name: str, gan: Series, control: Series, lo: float, hi: float) -> PairedRow | None:
    """Means of both branches over [lo, hi] and of their differences at shared steps."""
    g, c = gan.between(lo, hi), control.between(lo, hi)
    if not len(g) or not len(c):
        return None
    shared, gi, ci = np.intersect1d(g.x, c.x, return_indices=True)
    diffs = g.y[gi] - c.y[ci]
    n = len(shared)
    diff = float(diffs.mean()) if n else float(g.y.mean() - c.y.mean())
    # Neighbouring steps are correlated, so this interval is narrower than an honest one:
    # it says whether the windows differ, the seeds of a study say by how much.
    ci95 = float(1.96 * diffs.std(ddof=1) / np.sqrt(n)) if n >= 3 else None
    control_mean = float(c.y.mean())
    rel = diff / abs(control_mean) if abs(control_mean) > 1e-12 else None
    return PairedRow(name, lo, hi, float(g.y.mean()), control_mean, diff, ci95, rel, n)


def gan_effect(
    run: Run,
    *,
    smooth_frac: float,
    kl_growth: float,
    plateau_ratio: float,
    min_points: int,
    edge: float,
    gan_rec_worsen: float,
    gan_psnr_drop_db: float,
) -> GanEffect | None:
    """The GAN's effect on KL after the fork; None when the run has no GAN inside it.

    Windows: the post-fork span [fork, end] is halved; the *late* half is where a plateau
    shows. A branch's relative slope is its KL slope there times the window length, divided
    by the KL level at the fork (one scale for both branches). Rules, first match:
    1. gate: each branch needs ``min_points`` KL points in the late window, else inconclusive.
    2. the GAN flattened KL: control's relative slope > ``kl_growth`` (it keeps rising) and the
       GAN branch's <= ``plateau_ratio`` x the control's.
    3. KL flattens without the GAN too: both relative slopes <= ``kl_growth``.
    4. otherwise inconclusive (KL still rising with the GAN, or not clearly flatter).
    """
    fork = run.fork_step or run.gan_start
    kl = run.get("train/kl")
    if fork is None or kl is None or not kl.x[0] < fork < kl.x[-1]:
        return None
    if run.control is None or run.control.get("train/kl") is None:
        return GanEffect(
            NO_CONTROL,
            [
                "One run cannot say whether KL flattened because of the GAN: KL often flattens "
                "on its own. Train with gan_control=true for a no-GAN branch forked at "
                "gan_start, and the diagnosis compares the two."
            ],
        )
    ckl = run.control.get("train/kl")
    assert ckl is not None
    end = min(float(kl.x[-1]), float(ckl.x[-1]))
    mid = fork + (end - fork) / 2
    eff = GanEffect(PAIR_INCONCLUSIVE)
    ev = eff.evidence
    ev.update(pair_fork=fork, pair_late_lo=mid, pair_late_hi=end)
    g_s, c_s = smooth(kl, smooth_frac), smooth(ckl, smooth_frac)
    kl_fork = level(g_s, fork - edge * (fork - float(kl.x[0])), fork)
    ev["pair_kl_at_fork"] = kl_fork
    slopes = {}
    for label, s in (("gan", g_s), ("control", c_s)):
        slope = fit_slope(s, mid, end, min_points)
        if slope is not None:
            slopes[label] = slope * (end - mid) / max(abs(kl_fork), 1e-12)
            ev[f"pair_kl_rel_slope_late_{label}"] = slopes[label]
    _paired_rows(run, eff, fork, mid, end)
    window = f"late window [{mid:.0f}, {end:.0f}] after the fork at {fork:.0f}"
    if len(slopes) < 2:
        eff.explanation.append(
            f"Inconclusive (gate: each branch needs {min_points} KL points in the {window})."
        )
    else:
        g, c = slopes["gan"], slopes["control"]
        ratio = f" (the GAN run at {g / c:.2f}x the control's rate)" if c > 0 else ""
        if c > 0:
            ev["pair_kl_slope_ratio_late"] = g / c
        nums = (
            f"KL moved {g:+.3g} (GAN) vs {c:+.3g} (no-GAN control) of its level at the fork "
            f"({kl_fork:.4g} nats) across the {window}{ratio}; kl_growth={kl_growth:g}, "
            f"plateau_ratio={plateau_ratio:g}"
        )
        if c > kl_growth and g <= plateau_ratio * c:
            eff.verdict = GAN_FLATTENED
            eff.explanation.append(f"The control keeps rising while the GAN run does not: {nums}.")
        elif c <= kl_growth and g <= kl_growth:
            eff.verdict = FLATTENS_ANYWAY
            eff.explanation.append(f"Both branches are flat: the plateau is not the GAN's: {nums}.")
        elif g > kl_growth:
            eff.explanation.append(
                f"Inconclusive: KL still rises with the GAN (no plateau): {nums}."
            )
        else:
            eff.explanation.append(
                f"Inconclusive: the control rises, but the GAN run is not flatter by the margin: "
                f"{nums}."
            )
    _paired_w1(eff, gan_rec_worsen, gan_psnr_drop_db)
    return eff


def _paired_rows(run: Run, eff: GanEffect, fork: float, mid: float, end: float) -> None:
    assert run.control is not None
    for name in PAIRED:
        g, c = run.get(name), run.control.get(name)
        if g is None or c is None:
            continue
        for lo, hi in ((fork, mid), (mid, end)):
            row = paired_row(name, g, c, lo, hi)
            if row is not None:
                eff.rows.append(row)
    for row in eff.rows:
        if row.lo == mid:
            eff.evidence[f"pair_{row.name}_diff_late"] = row.diff


def _paired_w1(eff: GanEffect, rec_worsen: float, psnr_drop_db: float) -> None:
    """W1 on the pair: reconstruction worse with the GAN than without it, same late steps."""
    late = {r.name: r for r in eff.rows if r.hi == eff.evidence["pair_late_hi"]}
    worse = [
        f"{n} {late[n].gan:.4g} vs {late[n].control:.4g} ({late[n].rel:+.3g}, "
        f"gan_rec_worsen={rec_worsen:g})"
        for n in _WORSE_IF_HIGHER
        if n in late and late[n].rel is not None and late[n].rel > rec_worsen
    ] + [
        f"{n} {late[n].gan:.4g} vs {late[n].control:.4g} dB (gan_psnr_drop_db={psnr_drop_db:g})"
        for n in _WORSE_IF_LOWER
        if n in late and -late[n].diff > psnr_drop_db
    ]
    if worse:
        eff.gan_overweighted = True
        eff.explanation.append(
            "Reconstruction is worse with the GAN than without it at the same steps (W1): "
            + "; ".join(worse) + "."
        )
