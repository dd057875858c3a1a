"""Classify a run's KL trajectory (claims C3/C4, G2/G3, W1), citing the numbers used.

Pure functions over the series of a `Run`; no plotting, no file writing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vaegan.analysis.paired import GanEffect, gan_effect
from vaegan.analysis.push import push_means, push_sentence
from vaegan.analysis.runs import Run, Series, nonfinite_note
from vaegan.analysis.trends import SMOOTH_FRAC, fit_slope, level, rel_change, smooth
from vaegan.vocab import metric_names as metric

BENIGN, MALIGNANT, COLLAPSE, INCONCLUSIVE = (
    "benign rise",
    "malignant explosion",
    "posterior collapse",
    "inconclusive",
)
FLAG_PLATEAU, FLAG_GAN_HEAVY, FLAG_CLAMP, FLAG_FEW_ACTIVE, FLAG_RISING = (
    "plateau after GAN start",
    "GAN over-weighted",
    "variance at clamp",
    "few active units",
    "KL still rising",
)


@dataclass
class DiagnosisThresholds:
    """Rules and thresholds of the KL diagnosis (override with `--threshold name=value`).

    Windows are fractions of the run length L (generator steps of `train/kl`). Every series is
    first smoothed with a running median over `smooth_frac` of its points. A *relative change*
    over a window is the least-squares slope there times the window length, divided by the
    series' level (mean) in that window: 0.1 means "moved by 10 % of its level across the window".
    "Initial"/"final" values are means over the first/last `edge_frac` of the run.

    Primary verdict, first rule that matches:
    1. inconclusive: `train/kl` missing or fewer than `min_points` points.
    2. posterior collapse: final KL per latent dim < `collapse_kl_per_dim` nats (total KL when
       the latent size is unknown), or final active-units fraction < `collapse_active_frac`.
    3. malignant explosion: final KL per dim > `explode_kl_per_dim`; or KL's relative change in
       the last `last_window_frac` of the run > `kl_runaway`; or > `kl_growth` while recon's
       relative improvement there < `recon_stall`; or KL flat but log σ² at the clamp (below).
    4. inconclusive: KL still rising (> `kl_growth`) while recon still improves.
    5. benign rise: final KL / its lowest level in the first half of the run (or the initial
       level, if lower) >= `kl_rise_ratio`, and recon improved by at least
       `recon_min_improvement` (relative) over the run.
    6. otherwise inconclusive.
    Causes named for an explosion: recon reduction `sum` or effective β (β, divided by C*H*W for
    `sum`) < `small_effective_beta`; log σ² at the clamp; latent dims <= `small_latent_dims`.

    Flags (any number):
    - variance at clamp: final `latent/clamp_frac` > `clamp_frac` (if not logged: final
      `latent/logvar_min` within `clamp_margin` of the lower clamp bound).
    - few active units: final `latent/active_units` / latent dims < `low_active_frac`.
    - KL still rising: KL's relative change over the last window > `kl_growth`.
    - plateau after GAN start: in `plateau_window_frac` windows before/after gan_start, KL's
      relative change (normalised by the KL level at gan_start) was > `kl_growth` before and
      after is <= `plateau_ratio` x before x the pre-GAN trend (slope ratio of the window before
      to the one before it, capped at 1). No causal claim when KL was already flat or falling
      before, or slows only as much as its own pre-GAN deceleration predicts.
    - GAN over-weighted (W1): final train/val rec or val LPIPS worse than at gan_start by more
      than `gan_rec_worsen` (relative), or val PSNR lower by more than `gan_psnr_drop_db` dB.
    Any fitted window needs `min_window_points` points.
    """

    min_points: int = 20
    smooth_frac: float = SMOOTH_FRAC
    edge_frac: float = 0.05
    last_window_frac: float = 0.25
    min_window_points: int = 3
    kl_growth: float = 0.1
    kl_runaway: float = 1.0
    kl_rise_ratio: float = 2.0
    recon_min_improvement: float = 0.1
    recon_stall: float = 0.05
    collapse_kl_per_dim: float = 0.01
    collapse_active_frac: float = 0.05
    low_active_frac: float = 0.25
    explode_kl_per_dim: float = 10.0
    clamp_frac: float = 0.05
    clamp_margin: float = 0.5
    small_effective_beta: float = 1e-6
    small_latent_dims: int = 32
    plateau_window_frac: float = 0.2
    plateau_ratio: float = 0.5
    gan_rec_worsen: float = 0.1
    gan_psnr_drop_db: float = 0.5

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, Any] | Iterable[str] | None = None
    ) -> DiagnosisThresholds:
        """Defaults updated from {name: value} or ["name=value", ...]; unknown names raise."""
        if overrides is None:
            return cls()
        if not isinstance(overrides, Mapping):
            overrides = dict(_split_assignment(item) for item in overrides)
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in overrides.items():
            if name not in types:
                raise ValueError(f"unknown threshold {name!r}; known: {', '.join(types)}")
            cast = int if types[name] in (int, "int") else float
            try:
                values[name] = cast(float(raw))
            except (TypeError, ValueError):
                raise ValueError(f"threshold {name}={raw!r} is not a number") from None
        return dataclasses.replace(cls(), **values)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _split_assignment(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"threshold {item!r} is not of the form name=value")
    return name.strip(), value.strip()


@dataclass
class Diagnosis:
    """A verdict with the flags, numbers and sentences that justify it."""

    verdict: str
    flags: list[str] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)
    explanation: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    gan_effect: GanEffect | None = None  # is the plateau the GAN's doing (paired control)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def headline(self) -> str:
        flags = f" [{', '.join(self.flags)}]" if self.flags else ""
        return f"{self.verdict}{flags}"

    @property
    def gan_headline(self) -> str | None:
        """The GAN-effect verdict line, when the run has a GAN that switches on inside it."""
        return None if self.gan_effect is None else f"GAN effect: {self.gan_effect.verdict}"


def fmt(value: float | None) -> str:
    """Numbers in sentences and tables: 3 significant digits."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e6 else f"{value:.3g}"


# ---------------------------------------------------------------- the diagnosis


class _Case:
    """The run under diagnosis: its thresholds (``limits``), the span of its KL steps, the
    smoothed series, and the ``diagnosis`` the rules fill with evidence and sentences."""

    def __init__(self, run: Run, limits: DiagnosisThresholds) -> None:
        self.run, self.limits = run, limits
        self.diagnosis = Diagnosis(INCONCLUSIVE)
        self._smoothed: dict[str, Series | None] = {}
        kl = run.get(metric.TRAIN_KL)
        self.first_step, self.last_step = (
            (float(kl.x[0]), float(kl.x[-1])) if kl is not None else (0.0, 0.0)
        )
        self.span = self.last_step - self.first_step

    def smoothed(self, name: str) -> Series | None:
        """The series ``name`` after the running median; None when it was not logged."""
        if name not in self._smoothed:
            raw = self.run.get(name)
            self._smoothed[name] = None if raw is None else smooth(raw, self.limits.smooth_frac)
        return self._smoothed[name]

    def record(self, name: str, value: float | None) -> float | None:
        """Keep a finite ``value`` as evidence ``name``; returns it either way."""
        if value is not None and np.isfinite(value):
            self.diagnosis.evidence[name] = float(value)
        return value

    def explain(self, sentence: str) -> None:
        self.diagnosis.explanation.append(sentence)

    def initial(self, name: str) -> float | None:
        series = self.smoothed(name)
        if series is None:
            return None
        return level(series, self.first_step, self.first_step + self.limits.edge_frac * self.span)

    def final(self, name: str) -> float | None:
        series = self.smoothed(name)
        if series is None:
            return None
        return level(series, self.last_step - self.limits.edge_frac * self.span, self.last_step)

    def last_change(self, name: str) -> float | None:
        series = self.smoothed(name)
        if series is None:
            return None
        window_start = self.last_step - self.limits.last_window_frac * self.span
        return rel_change(series, window_start, self.last_step, self.limits.min_window_points)


def diagnose(run: Run, thresholds: DiagnosisThresholds | None = None) -> Diagnosis:
    """Classify the KL trajectory of `run`; see `DiagnosisThresholds` for the rules."""
    case = _Case(run, thresholds or DiagnosisThresholds())
    limits = case.limits
    # The pair has its own gate (KL points in its late window), so it is read even when the
    # run is too short for a verdict on the whole trajectory.
    case.diagnosis.gan_effect = gan_effect(
        run, smooth_frac=limits.smooth_frac, kl_growth=limits.kl_growth,
        plateau_ratio=limits.plateau_ratio, min_points=limits.min_window_points,
        edge=limits.edge_frac, gan_rec_worsen=limits.gan_rec_worsen,
        gan_psnr_drop_db=limits.gan_psnr_drop_db,
    )
    if case.diagnosis.gan_effect is not None and case.diagnosis.gan_effect.gan_overweighted:
        case.diagnosis.flags.append(FLAG_GAN_HEAVY)
    kl = run.get(metric.TRAIN_KL)
    points = 0 if kl is None else len(kl)
    case.record("kl_points", points)
    if kl is None or points < limits.min_points:
        case.explain(
            nonfinite_note(run, metric.TRAIN_KL)  # a diverged KL is not "too little data"
            or f"Too little data: {metric.TRAIN_KL} has {points} points, need"
            f" {limits.min_points} (threshold min_points); no verdict."
        )
        return case.diagnosis
    _latent_evidence(case)
    case.diagnosis.verdict = _verdict(case)
    window = _gan_window(case)
    if window is not None:
        _gan_plateau(case, *window)
        _gan_overweighted(case, window[0])
    _kl_push(case, window)
    return case.diagnosis


def _kl_push(case: _Case, window: tuple[float, float] | None) -> None:
    """Which term pushed KL which way (``grad/<term>/kl_push``): before and after gan_start,
    or over the last window of a run without a GAN phase."""
    if window is None:
        start = case.last_step - case.limits.last_window_frac * case.span
        stretches = [("last", start, case.last_step, "Over the last stretch of the run")]
    else:
        gan_start, width = window
        stretches = [("before_gan", gan_start - width, last_step_before(gan_start),
                      "Before gan_start"),
                     ("after_gan", gan_start, case.last_step, "After gan_start")]
    for tag, lo, hi, label in stretches:
        pushes = push_means(case.run, lo, hi)
        if not pushes:
            continue
        for term, push in pushes.items():
            case.record(f"kl_push_{term}_{tag}", push.total)
            case.record(f"kl_push_median_{term}_{tag}", push.median)
            case.record(f"kl_push_up_frac_{term}_{tag}", push.up)
            case.record(f"kl_push_mu_{term}_{tag}", push.mu)
            case.record(f"kl_push_var_{term}_{tag}", push.var)
        case.explain(push_sentence(f"{label} (KL push: nats per unit lr along each term's"
                                   " Adam step)", pushes))


def _latent_evidence(case: _Case) -> None:
    """KL level and growth, recon progress, active units and clamp saturation."""
    limits, run = case.limits, case.run
    case.record("steps", case.span)
    kl_initial = case.record("kl_initial", case.initial(metric.TRAIN_KL))
    kl_final = case.record("kl_final", case.final(metric.TRAIN_KL))
    dims = run.latent_dims
    case.record("latent_dims", dims)
    if dims:
        case.record("kl_per_dim_final", kl_final / dims)
    kl = case.smoothed(metric.TRAIN_KL)
    assert kl is not None and kl_initial is not None and kl_final is not None
    first_half = kl.between(case.first_step, case.first_step + case.span / 2)
    low = case.record("kl_low_early", min(kl_initial, float(first_half.y.min())))
    case.record("kl_rise_ratio", kl_final / max(low, 1e-12))
    case.record("kl_rel_change_last", case.last_change(metric.TRAIN_KL))
    rec = metric.TRAIN_REC if run.get(metric.TRAIN_REC) is not None else metric.VAL_REC
    rec_initial, rec_final = case.initial(rec), case.final(rec)
    if rec_initial is not None and rec_final is not None:
        improvement = (rec_initial - rec_final) / max(abs(rec_initial), 1e-12)
        case.record("rec_improvement_total", improvement)
        change = case.last_change(rec)
        case.record("rec_improvement_last", None if change is None else -change)
    active = case.record("active_units_final", case.final(metric.LATENT_ACTIVE_UNITS))
    case.record("collapsed_dims_final", case.final(metric.LATENT_COLLAPSED_DIMS))
    if active is not None and dims and active <= dims:
        active_frac = case.record("active_frac_final", active / dims)
        if active_frac < limits.low_active_frac:
            case.diagnosis.flags.append(FLAG_FEW_ACTIVE)
    clamp_frac = case.record("clamp_frac_final", case.final(metric.LATENT_CLAMP_FRAC))
    logvar_min = case.record("logvar_min_final", case.final(metric.LATENT_LOGVAR_MIN))
    case.record("logvar_mean_final", case.final(metric.LATENT_LOGVAR_MEAN))
    clamp_bound = case.record("logvar_clamp_min", run.logvar_bounds[0])
    if clamp_frac is not None:
        at_clamp = clamp_frac > limits.clamp_frac
    else:
        near = clamp_bound is not None and logvar_min is not None
        at_clamp = near and logvar_min <= clamp_bound + limits.clamp_margin
    if at_clamp:
        case.diagnosis.flags.append(FLAG_CLAMP)
    beta = case.record("beta", run.beta)
    if beta is not None:
        pixels = run.pixels if run.rec_reduction == "sum" else 1
        case.record("effective_beta", beta / pixels if pixels else None)


def _verdict(case: _Case) -> str:
    limits, evidence = case.limits, case.diagnosis.evidence
    kl_final, growth = evidence["kl_final"], evidence.get("kl_rel_change_last")
    per_dim = evidence.get("kl_per_dim_final")
    rec_last = evidence.get("rec_improvement_last")
    kl_txt = (
        f"final KL {fmt(kl_final)} nats = {fmt(per_dim)} nats/dim over"
        f" {fmt(evidence['latent_dims'])} latent dims"
        if per_dim is not None
        else f"final KL {fmt(kl_final)} nats (latent size unknown: total KL used as an upper"
        " bound of KL per dim)"
    )
    case.explain(
        kl_txt + f"; it changed by {fmt(growth)} of its level over the last"
        f" {fmt(limits.last_window_frac)} of the run (kl_growth={fmt(limits.kl_growth)})."
    )
    if (per_dim if per_dim is not None else kl_final) < limits.collapse_kl_per_dim:
        case.explain(
            f"KL per dim is below collapse_kl_per_dim={fmt(limits.collapse_kl_per_dim)}: the"
            " posterior equals the prior and the decoder ignores the latent (C3)."
        )
        return COLLAPSE
    if evidence.get("active_frac_final", 1.0) < limits.collapse_active_frac:
        case.explain(
            f"Only {fmt(evidence['active_frac_final'])} of latent units are active"
            f" (< collapse_active_frac={fmt(limits.collapse_active_frac)})."
        )
        return COLLAPSE
    growing = growth is not None and growth > limits.kl_growth
    if growing:
        case.diagnosis.flags.append(FLAG_RISING)
    stalled = rec_last is not None and rec_last < limits.recon_stall
    rec_txt = f"recon improved by {fmt(rec_last)} of its level over the same window"
    if per_dim is not None and per_dim > limits.explode_kl_per_dim:
        case.explain(
            f"KL per dim {fmt(per_dim)} exceeds"
            f" explode_kl_per_dim={fmt(limits.explode_kl_per_dim)}."
        )
        return _malignant(case)
    if growing and (growth > limits.kl_runaway or stalled):
        case.explain(
            f"KL keeps growing while {rec_txt} (recon_stall={fmt(limits.recon_stall)},"
            f" kl_runaway={fmt(limits.kl_runaway)}): regularisation is failing (C4)."
        )
        return _malignant(case)
    if growing:
        why = "recon was not logged" if rec_last is None else rec_txt
        case.explain(f"KL is still rising and {why}: still in the rising phase; train longer.")
        return INCONCLUSIVE
    if FLAG_CLAMP in case.diagnosis.flags:
        case.explain(
            f"KL is flat only because log σ² sits at the clamp (clamp_frac"
            f" {fmt(evidence.get('clamp_frac_final'))}, log σ² min"
            f" {fmt(evidence.get('logvar_min_final'))}): the clamp caps the variance term that"
            " would otherwise keep growing (F3)."
        )
        return _malignant(case)
    return _benign_or_not(case)


def _benign_or_not(case: _Case) -> str:
    limits, evidence = case.limits, case.diagnosis.evidence
    ratio, rec_total = evidence["kl_rise_ratio"], evidence.get("rec_improvement_total")
    rose = ratio >= limits.kl_rise_ratio
    improved = rec_total is not None and rec_total >= limits.recon_min_improvement
    case.explain(
        f"KL went from {fmt(evidence['kl_low_early'])} (its lowest in the first half of the run) to"
        f" {fmt(evidence['kl_final'])} (x{fmt(ratio)},"
        f" kl_rise_ratio={fmt(limits.kl_rise_ratio)}); recon improved by {fmt(rec_total)} over"
        f" the run (recon_min_improvement={fmt(limits.recon_min_improvement)})."
    )
    if rose and improved:
        case.explain(
            "KL rose from its early low and levelled off while recon improved:"
            " information is being encoded and the rise is benign (C1, C3)."
        )
        return BENIGN
    case.explain(
        "KL is flat but "
        + ("did not rise" if not rose else "recon did not improve enough")
        + "; no verdict."
    )
    return INCONCLUSIVE


def _malignant(case: _Case) -> str:
    """Name the likely causes of an explosion from the evidence (F2-F4)."""
    limits, evidence, run = case.limits, case.diagnosis.evidence, case.run
    causes = case.diagnosis.causes
    if run.rec_reduction == "sum":
        causes.append("recon reduction 'sum': recon dwarfs β·KL, effective β is tiny (F2)")
    effective_beta = evidence.get("effective_beta")
    if effective_beta is not None and effective_beta < limits.small_effective_beta:
        causes.append(
            f"effective β {fmt(effective_beta)} < small_effective_beta="
            f"{fmt(limits.small_effective_beta)} (β too small or 0; F1/F2)"
        )
    if FLAG_CLAMP in case.diagnosis.flags:
        causes.append("log σ² at the clamp bound: the posterior variance is pushed to 0 (F3)")
    dims = evidence.get("latent_dims")
    if dims is not None and dims <= limits.small_latent_dims:
        causes.append(
            f"latent too small: {fmt(dims)} dims <= small_latent_dims="
            f"{fmt(limits.small_latent_dims)} (F4)"
        )
    case.explain(
        "Likely causes: "
        + ("; ".join(causes) if causes else "none of the known ones found in the logged evidence")
        + "."
    )
    return MALIGNANT


def _gan_window(case: _Case) -> tuple[float, float] | None:
    """(gan_start, window length) when gan_start lies inside the logged steps."""
    gan_start = case.run.gan_start
    if gan_start is None:
        return None
    case.record("gan_start", gan_start)
    if not case.first_step < gan_start < case.last_step:
        case.explain(
            f"gan_start={fmt(gan_start)} is outside the logged steps"
            f" [{fmt(case.first_step)}, {fmt(case.last_step)}]: no before/after comparison."
        )
        return None
    return gan_start, case.limits.plateau_window_frac * case.span


def _gan_plateau(case: _Case, gan_start: float, width: float) -> None:
    """KL slope before vs after gan_start (G3) and where the adversarial gradient goes (G2)."""
    kl, limits = case.smoothed(metric.TRAIN_KL), case.limits
    assert kl is not None
    kl_at_gan = case.record(
        "kl_at_gan_start", level(kl, gan_start - limits.edge_frac * case.span, gan_start)
    )
    before = fit_slope(kl, gan_start - width, gan_start, limits.min_window_points)
    after = fit_slope(kl, gan_start, gan_start + width, limits.min_window_points)
    if before is None or after is None:
        case.explain("Too few KL points around gan_start to compare slopes.")
        return
    case.record("kl_slope_before_gan", before)
    case.record("kl_slope_after_gan", after)
    per_level = width / max(abs(kl_at_gan), 1e-12)  # slope -> change over a window, relative
    rel_before = case.record("kl_rel_slope_before_gan", before * per_level)
    rel_after = case.record("kl_rel_slope_after_gan", after * per_level)
    # KL saturating on its own also slows down: compare with the deceleration seen before GAN.
    earlier = fit_slope(kl, gan_start - 2 * width, gan_start - width, limits.min_window_points)
    trend = float(np.clip(before / earlier, 0.0, 1.0)) if earlier and earlier > 0 < before else 1.0
    case.record("kl_slope_ratio_pre_gan", trend)
    slopes = (
        f"KL slope {fmt(before)} -> {fmt(after)} nats/step, i.e. {fmt(rel_before)} ->"
        f" {fmt(rel_after)} of the KL level at gan_start ({fmt(kl_at_gan)}) per"
        f" {fmt(width)}-step window"
    )
    if rel_before <= limits.kl_growth:
        state = "already flattened" if rel_before >= -limits.kl_growth else "been falling"
        case.explain(f"KL had {state} before GAN start ({slopes}); no causal claim.")
    elif rel_after <= limits.plateau_ratio * rel_before * trend:
        case.diagnosis.flags.append(FLAG_PLATEAU)
        case.explain(
            f"KL flattened after GAN start: {slopes}; the pre-GAN trend (slope x{fmt(trend)}"
            f" per window) predicted {fmt(rel_before * trend)}"
            f" (plateau_ratio={fmt(limits.plateau_ratio)})."
        )
    elif rel_after <= limits.plateau_ratio * rel_before:
        case.explain(
            f"KL slowed after GAN start ({slopes}) but no more than its pre-GAN deceleration"
            f" (slope x{fmt(trend)} per window) predicts: KL is saturating on its own;"
            " no causal claim."
        )
    else:
        case.explain(f"KL did not flatten after GAN start: {slopes}.")
    _grad_shares(case, gan_start, width)


def last_step_before(gan_start: float) -> float:
    """Upper bound of a before-GAN window: step `gan_start` itself already has the GAN on."""
    return gan_start - 0.5


def grad_means(run: Run, lo: float, hi: float) -> dict[str, tuple[float, float]]:
    """Mean (encoder, decoder) gradient norm per loss term over [lo, hi]."""
    means = {}
    for term in metric.GRAD_TERMS:
        encoder = run.get(metric.grad(term, metric.ENCODER))
        decoder = run.get(metric.grad(term, metric.DECODER))
        if encoder is None or decoder is None:
            continue
        encoder, decoder = encoder.between(lo, hi), decoder.between(lo, hi)
        if len(encoder) and len(decoder):
            means[term] = (float(encoder.y.mean()), float(decoder.y.mean()))
    return means


def _grad_shares(case: _Case, gan_start: float, width: float) -> None:
    after = grad_means(case.run, gan_start, gan_start + width)
    shares = {
        term: encoder / max(encoder + decoder, 1e-30)
        for term, (encoder, decoder) in after.items()
    }
    for term, share in shares.items():
        case.record(f"grad_{term}_encoder_share_after_gan", share)
    before = grad_means(case.run, gan_start - width, last_step_before(gan_start))
    for label, means in (("before", before), ("after", after)):
        encoder_total = sum(encoder for encoder, _ in means.values())
        if metric.KL in means and encoder_total > 0:
            case.record(f"grad_kl_share_of_encoder_{label}_gan",
                        means[metric.KL][0] / encoder_total)
    if metric.ADV not in shares or metric.REC not in shares:
        return
    adv, rec = shares[metric.ADV], shares[metric.REC]
    verdict = (
        "consistent with G2 (adversarial gradients act mainly on the decoder)"
        if adv < rec
        else "not consistent with G2"
    )
    case.explain(
        f"After GAN start the adversarial gradient norm falls {fmt(adv)} on the encoder"
        f" (encoder/(encoder+decoder)) vs {fmt(rec)} for the rec term: {verdict}."
    )


# W1's quality metrics: (name, higher is better)
_QUALITY = ((metric.TRAIN_REC, False), (metric.VAL_REC, False), (metric.VAL_LPIPS, False),
            (metric.VAL_PSNR, True))


def _gan_overweighted(case: _Case, gan_start: float) -> None:
    """W1: reconstruction quality at the end vs at gan_start."""
    limits = case.limits
    worse = []
    for name, higher_better in _QUALITY:
        series = case.smoothed(name)
        if series is None or series.x[0] >= gan_start or series.x[-1] <= gan_start:
            continue
        before_gan = series.between(-np.inf, gan_start)
        at_gan = level(before_gan, gan_start - limits.edge_frac * case.span, gan_start)
        end = case.final(name)
        assert end is not None
        if higher_better:
            change = case.record(f"{name}_drop_after_gan", at_gan - end)
            bad = at_gan - end > limits.gan_psnr_drop_db
            unit = f"dropped by {fmt(change)} dB (gan_psnr_drop_db={fmt(limits.gan_psnr_drop_db)})"
        else:
            relative = (end - at_gan) / max(abs(at_gan), 1e-12)
            change = case.record(f"{name}_change_after_gan", relative)
            bad = change > limits.gan_rec_worsen
            unit = f"changed by {fmt(change)} (gan_rec_worsen={fmt(limits.gan_rec_worsen)})"
        if bad:
            worse.append(f"{name} {fmt(at_gan)} at gan_start -> {fmt(end)} at the end, {unit}")
    if worse:
        if FLAG_GAN_HEAVY not in case.diagnosis.flags:  # the pair may have flagged it already
            case.diagnosis.flags.append(FLAG_GAN_HEAVY)
        case.explain(
            "Reconstruction got worse after GAN start (W1: adversarial weight too large?): "
            + "; ".join(worse)
            + "."
        )
