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
from vaegan.vocab import metric_names as metric

GAN_FLATTENED = "the GAN flattened KL (the control keeps rising)"
FLATTENS_ANYWAY = "KL flattens without the GAN too"
PAIR_INCONCLUSIVE = "inconclusive"
NO_CONTROL = "no causal claim: no no-GAN control (train with gan_control=true)"
PAIR_MISMATCHED = "refused: the control was not forked from this run"

# Compared after the fork; train rows pair by step, val rows by validation step.
PAIRED = (
    metric.TRAIN_KL, metric.TRAIN_KL_MU, metric.TRAIN_KL_VAR,
    metric.LATENT_LOGVAR_MEAN, metric.LATENT_LOGVAR_MIN, metric.LATENT_CLAMP_FRAC,
    metric.TRAIN_REC, metric.TRAIN_PERCEPTUAL,
    metric.VAL_REC, metric.VAL_LPIPS, metric.VAL_PSNR, metric.VAL_KL,
)
# W1, paired: the GAN branch's reconstruction worse than the control's at the same steps.
_WORSE_IF_HIGHER = (metric.VAL_REC, metric.VAL_LPIPS)
_WORSE_IF_LOWER = (metric.VAL_PSNR,)


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
    gan, control = gan.between(lo, hi), control.between(lo, hi)
    if not len(gan) or not len(control):
        return None
    shared, gan_at, control_at = np.intersect1d(gan.x, control.x, return_indices=True)
    diffs = gan.y[gan_at] - control.y[control_at]
    pairs = len(shared)
    diff = float(diffs.mean()) if pairs else float(gan.y.mean() - control.y.mean())
    # Neighbouring steps are correlated, so this interval is narrower than an honest one:
    # it says whether the windows differ, the seeds of a study say by how much.
    ci95 = float(1.96 * diffs.std(ddof=1) / np.sqrt(pairs)) if pairs >= 3 else None
    control_mean = float(control.y.mean())
    rel = diff / abs(control_mean) if abs(control_mean) > 1e-12 else None
    return PairedRow(name, lo, hi, float(gan.y.mean()), control_mean, diff, ci95, rel, pairs)


def mismatched_fork(run: Run) -> str | None:
    """Why ``run.control`` is not this run's control, or None when it is (or neither branch
    recorded its fork: pairs written before ``fork_id``).

    Both branches record the hash of the fork checkpoint (``fork_id`` in run_info.json); a
    control left over by an earlier run in the same dir holds another one, or none.
    """
    assert run.control is not None
    ours, theirs = run.info.get("fork_id"), run.control.info.get("fork_id")
    if ours == theirs:
        return None
    unknown = "(not recorded)"
    return (
        f"The no-GAN branch {run.control.path} was forked from checkpoint {theirs or unknown}, "
        f"this run's fork is {ours or unknown}: it is another run's "
        "control, so no paired comparison is made. Train the pair again (gan_control=true; "
        "on_existing_run=overwrite replaces both branches)."
    )


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
    kl = run.get(metric.TRAIN_KL)
    if fork is None or kl is None or not kl.x[0] < fork < kl.x[-1]:
        return None
    control_kl = None if run.control is None else run.control.get(metric.TRAIN_KL)
    if control_kl is None:
        return GanEffect(
            NO_CONTROL,
            [
                "One run cannot say whether KL flattened because of the GAN: KL often flattens "
                "on its own. Train with gan_control=true for a no-GAN branch forked at "
                "gan_start, and the diagnosis compares the two."
            ],
        )
    if (why := mismatched_fork(run)) is not None:
        return GanEffect(PAIR_MISMATCHED, [why])
    end = min(float(kl.x[-1]), float(control_kl.x[-1]))
    mid = fork + (end - fork) / 2
    effect = GanEffect(PAIR_INCONCLUSIVE)
    evidence = effect.evidence
    evidence.update(pair_fork=fork, pair_late_lo=mid, pair_late_hi=end)
    gan_smoothed, control_smoothed = smooth(kl, smooth_frac), smooth(control_kl, smooth_frac)
    kl_fork = level(gan_smoothed, fork - edge * (fork - float(kl.x[0])), fork)
    evidence["pair_kl_at_fork"] = kl_fork
    slopes = {}
    for label, series in (("gan", gan_smoothed), ("control", control_smoothed)):
        slope = fit_slope(series, mid, end, min_points)
        if slope is not None:
            slopes[label] = slope * (end - mid) / max(abs(kl_fork), 1e-12)
            evidence[f"pair_kl_rel_slope_late_{label}"] = slopes[label]
    _paired_rows(run, effect, fork, mid, end)
    window = f"late window [{mid:.0f}, {end:.0f}] after the fork at {fork:.0f}"
    if len(slopes) < 2:
        effect.explanation.append(
            f"Inconclusive (gate: each branch needs {min_points} KL points in the {window})."
        )
    else:
        gan_slope, control_slope = slopes["gan"], slopes["control"]
        ratio = (
            f" (the GAN run at {gan_slope / control_slope:.2f}x the control's rate)"
            if control_slope > 0 else ""
        )
        if control_slope > 0:
            evidence["pair_kl_slope_ratio_late"] = gan_slope / control_slope
        numbers = (
            f"KL moved {gan_slope:+.3g} (GAN) vs {control_slope:+.3g} (no-GAN control) of its"
            f" level at the fork ({kl_fork:.4g} nats) across the {window}{ratio};"
            f" kl_growth={kl_growth:g}, plateau_ratio={plateau_ratio:g}"
        )
        if control_slope > kl_growth and gan_slope <= plateau_ratio * control_slope:
            effect.verdict = GAN_FLATTENED
            effect.explanation.append(
                f"The control keeps rising while the GAN run does not: {numbers}."
            )
        elif control_slope <= kl_growth and gan_slope <= kl_growth:
            effect.verdict = FLATTENS_ANYWAY
            effect.explanation.append(
                f"Both branches are flat: the plateau is not the GAN's: {numbers}."
            )
        elif gan_slope > kl_growth:
            effect.explanation.append(
                f"Inconclusive: KL still rises with the GAN (no plateau): {numbers}."
            )
        else:
            effect.explanation.append(
                f"Inconclusive: the control rises, but the GAN run is not flatter by the margin: "
                f"{numbers}."
            )
    _paired_w1(effect, gan_rec_worsen, gan_psnr_drop_db)
    return effect


def _paired_rows(run: Run, effect: GanEffect, fork: float, mid: float, end: float) -> None:
    assert run.control is not None
    for name in PAIRED:
        gan, control = run.get(name), run.control.get(name)
        if gan is None or control is None:
            continue
        for lo, hi in ((fork, mid), (mid, end)):
            row = paired_row(name, gan, control, lo, hi)
            if row is not None:
                effect.rows.append(row)
    for row in effect.rows:
        if row.lo == mid:
            effect.evidence[f"pair_{row.name}_diff_late"] = row.diff


def _paired_w1(effect: GanEffect, rec_worsen: float, psnr_drop_db: float) -> None:
    """W1 on the pair: reconstruction worse with the GAN than without it, same late steps."""
    late = {row.name: row for row in effect.rows if row.hi == effect.evidence["pair_late_hi"]}
    worse = [
        f"{name} {late[name].gan:.4g} vs {late[name].control:.4g} ({late[name].rel:+.3g}, "
        f"gan_rec_worsen={rec_worsen:g})"
        for name in _WORSE_IF_HIGHER
        if name in late and late[name].rel is not None and late[name].rel > rec_worsen
    ] + [
        f"{name} {late[name].gan:.4g} vs {late[name].control:.4g} dB"
        f" (gan_psnr_drop_db={psnr_drop_db:g})"
        for name in _WORSE_IF_LOWER
        if name in late and -late[name].diff > psnr_drop_db
    ]
    if worse:
        effect.gan_overweighted = True
        effect.explanation.append(
            "Reconstruction is worse with the GAN than without it at the same steps (W1): "
            + "; ".join(worse) + "."
        )
