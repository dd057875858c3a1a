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
from vaegan.analysis.runs import Run, Series, nonfinite_note
from vaegan.analysis.trends import SMOOTH_FRAC, fit_slope, level, rel_change, smooth

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
GRAD_TERMS = ("rec", "perceptual", "kl", "adv")


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


class _Diagnoser:
    """Holds the run, thresholds, windows and smoothed series while the rules add evidence."""

    def __init__(self, run: Run, th: DiagnosisThresholds) -> None:
        self.run, self.th = run, th
        self.d = Diagnosis(INCONCLUSIVE)
        self._smoothed: dict[str, Series | None] = {}
        kl = run.get("train/kl")
        self.x0, self.x1 = (float(kl.x[0]), float(kl.x[-1])) if kl is not None else (0.0, 0.0)
        self.span = self.x1 - self.x0

    def s(self, name: str) -> Series | None:
        if name not in self._smoothed:
            raw = self.run.get(name)
            self._smoothed[name] = None if raw is None else smooth(raw, self.th.smooth_frac)
        return self._smoothed[name]

    def ev(self, name: str, value: float | None) -> float | None:
        if value is not None and np.isfinite(value):
            self.d.evidence[name] = float(value)
        return value

    def say(self, sentence: str) -> None:
        self.d.explanation.append(sentence)

    def initial(self, name: str) -> float | None:
        s = self.s(name)
        return None if s is None else level(s, self.x0, self.x0 + self.th.edge_frac * self.span)

    def final(self, name: str) -> float | None:
        s = self.s(name)
        return None if s is None else level(s, self.x1 - self.th.edge_frac * self.span, self.x1)

    def last_change(self, name: str) -> float | None:
        s = self.s(name)
        lo = self.x1 - self.th.last_window_frac * self.span
        return None if s is None else rel_change(s, lo, self.x1, self.th.min_window_points)


def diagnose(run: Run, thresholds: DiagnosisThresholds | None = None) -> Diagnosis:
    """Classify the KL trajectory of `run`; see `DiagnosisThresholds` for the rules."""
    dg = _Diagnoser(run, thresholds or DiagnosisThresholds())
    th = dg.th
    # The pair has its own gate (KL points in its late window), so it is read even when the
    # run is too short for a verdict on the whole trajectory.
    dg.d.gan_effect = gan_effect(
        run, smooth_frac=th.smooth_frac, kl_growth=th.kl_growth, plateau_ratio=th.plateau_ratio,
        min_points=th.min_window_points, edge=th.edge_frac, gan_rec_worsen=th.gan_rec_worsen,
        gan_psnr_drop_db=th.gan_psnr_drop_db,
    )
    if dg.d.gan_effect is not None and dg.d.gan_effect.gan_overweighted:
        dg.d.flags.append(FLAG_GAN_HEAVY)
    raw = run.get("train/kl")
    n = 0 if raw is None else len(raw)
    dg.ev("kl_points", n)
    if raw is None or n < th.min_points:
        dg.say(
            nonfinite_note(run, "train/kl")  # a diverged KL is not "too little data"
            or f"Too little data: train/kl has {n} points, need {th.min_points}"
            " (threshold min_points); no verdict."
        )
        return dg.d
    _latent_evidence(dg)
    dg.d.verdict = _verdict(dg)
    window = _gan_window(dg)
    if window is not None:
        _gan_plateau(dg, *window)
        _gan_overweighted(dg, window[0])
    return dg.d


def _latent_evidence(dg: _Diagnoser) -> None:
    """KL level and growth, recon progress, active units and clamp saturation."""
    th, run = dg.th, dg.run
    dg.ev("steps", dg.span)
    kl0, kl1 = dg.ev("kl_initial", dg.initial("train/kl")), dg.ev("kl_final", dg.final("train/kl"))
    dims = run.latent_dims
    dg.ev("latent_dims", dims)
    if dims:
        dg.ev("kl_per_dim_final", kl1 / dims)
    kl = dg.s("train/kl")
    assert kl is not None and kl0 is not None and kl1 is not None
    low = dg.ev("kl_low_early", min(kl0, float(kl.between(dg.x0, dg.x0 + dg.span / 2).y.min())))
    dg.ev("kl_rise_ratio", kl1 / max(low, 1e-12))
    dg.ev("kl_rel_change_last", dg.last_change("train/kl"))
    rec = "train/rec" if run.get("train/rec") is not None else "val/rec"
    rec0, rec1 = dg.initial(rec), dg.final(rec)
    if rec0 is not None and rec1 is not None:
        dg.ev("rec_improvement_total", (rec0 - rec1) / max(abs(rec0), 1e-12))
        change = dg.last_change(rec)
        dg.ev("rec_improvement_last", None if change is None else -change)
    active, collapsed = dg.final("latent/active_units"), dg.final("latent/collapsed_dims")
    dg.ev("active_units_final", active)
    dg.ev("collapsed_dims_final", collapsed)
    if active is not None and dims and active <= dims:
        frac = dg.ev("active_frac_final", active / dims)
        if frac < th.low_active_frac:
            dg.d.flags.append(FLAG_FEW_ACTIVE)
    clamp = dg.ev("clamp_frac_final", dg.final("latent/clamp_frac"))
    lv_min = dg.ev("logvar_min_final", dg.final("latent/logvar_min"))
    dg.ev("logvar_mean_final", dg.final("latent/logvar_mean"))
    lo_bound = dg.ev("logvar_clamp_min", run.logvar_bounds[0])
    if clamp is not None:
        at_clamp = clamp > th.clamp_frac
    else:
        near = lo_bound is not None and lv_min is not None
        at_clamp = near and lv_min <= lo_bound + th.clamp_margin
    if at_clamp:
        dg.d.flags.append(FLAG_CLAMP)
    beta = dg.ev("beta", run.beta)
    if beta is not None:
        pixels = run.pixels if run.rec_reduction == "sum" else 1
        dg.ev("effective_beta", beta / pixels if pixels else None)


def _verdict(dg: _Diagnoser) -> str:
    th, e = dg.th, dg.d.evidence
    kl1, growth = e["kl_final"], e.get("kl_rel_change_last")
    per_dim = e.get("kl_per_dim_final")
    rec_last = e.get("rec_improvement_last")
    kl_txt = (
        f"final KL {fmt(kl1)} nats = {fmt(per_dim)} nats/dim over {fmt(e['latent_dims'])}"
        " latent dims"
        if per_dim is not None
        else f"final KL {fmt(kl1)} nats (latent size unknown: total KL used as an upper bound"
        " of KL per dim)"
    )
    dg.say(
        kl_txt + f"; it changed by {fmt(growth)} of its level over the last"
        f" {fmt(th.last_window_frac)} of the run (kl_growth={fmt(th.kl_growth)})."
    )
    if (per_dim if per_dim is not None else kl1) < th.collapse_kl_per_dim:
        dg.say(
            f"KL per dim is below collapse_kl_per_dim={fmt(th.collapse_kl_per_dim)}: the"
            " posterior equals the prior and the decoder ignores the latent (C3)."
        )
        return COLLAPSE
    if e.get("active_frac_final", 1.0) < th.collapse_active_frac:
        dg.say(
            f"Only {fmt(e['active_frac_final'])} of latent units are active"
            f" (< collapse_active_frac={fmt(th.collapse_active_frac)})."
        )
        return COLLAPSE
    growing = growth is not None and growth > th.kl_growth
    if growing:
        dg.d.flags.append(FLAG_RISING)
    stalled = rec_last is not None and rec_last < th.recon_stall
    rec_txt = f"recon improved by {fmt(rec_last)} of its level over the same window"
    if per_dim is not None and per_dim > th.explode_kl_per_dim:
        dg.say(
            f"KL per dim {fmt(per_dim)} exceeds explode_kl_per_dim={fmt(th.explode_kl_per_dim)}."
        )
        return _malignant(dg)
    if growing and (growth > th.kl_runaway or stalled):
        dg.say(
            f"KL keeps growing while {rec_txt} (recon_stall={fmt(th.recon_stall)},"
            f" kl_runaway={fmt(th.kl_runaway)}): regularisation is failing (C4)."
        )
        return _malignant(dg)
    if growing:
        why = "recon was not logged" if rec_last is None else rec_txt
        dg.say(f"KL is still rising and {why}: still in the rising phase; train longer.")
        return INCONCLUSIVE
    if FLAG_CLAMP in dg.d.flags:
        dg.say(
            f"KL is flat only because log σ² sits at the clamp (clamp_frac"
            f" {fmt(e.get('clamp_frac_final'))}, log σ² min {fmt(e.get('logvar_min_final'))}):"
            " the clamp caps the variance term that would otherwise keep growing (F3)."
        )
        return _malignant(dg)
    return _benign_or_not(dg)


def _benign_or_not(dg: _Diagnoser) -> str:
    th, e = dg.th, dg.d.evidence
    ratio, rec_total = e["kl_rise_ratio"], e.get("rec_improvement_total")
    rose = ratio >= th.kl_rise_ratio
    improved = rec_total is not None and rec_total >= th.recon_min_improvement
    dg.say(
        f"KL went from {fmt(e['kl_low_early'])} (its lowest in the first half of the run) to"
        f" {fmt(e['kl_final'])} (x{fmt(ratio)},"
        f" kl_rise_ratio={fmt(th.kl_rise_ratio)}); recon improved by {fmt(rec_total)} over the"
        f" run (recon_min_improvement={fmt(th.recon_min_improvement)})."
    )
    if rose and improved:
        dg.say(
            "KL rose from its early low and levelled off while recon improved:"
            " information is being encoded and the rise is benign (C1, C3)."
        )
        return BENIGN
    dg.say(
        "KL is flat but "
        + ("did not rise" if not rose else "recon did not improve enough")
        + "; no verdict."
    )
    return INCONCLUSIVE


def _malignant(dg: _Diagnoser) -> str:
    """Name the likely causes of an explosion from the evidence (F2-F4)."""
    th, e, run = dg.th, dg.d.evidence, dg.run
    causes = dg.d.causes
    if run.rec_reduction == "sum":
        causes.append("recon reduction 'sum': recon dwarfs β·KL, effective β is tiny (F2)")
    eff = e.get("effective_beta")
    if eff is not None and eff < th.small_effective_beta:
        causes.append(
            f"effective β {fmt(eff)} < small_effective_beta="
            f"{fmt(th.small_effective_beta)} (β too small or 0; F1/F2)"
        )
    if FLAG_CLAMP in dg.d.flags:
        causes.append("log σ² at the clamp bound: the posterior variance is pushed to 0 (F3)")
    dims = e.get("latent_dims")
    if dims is not None and dims <= th.small_latent_dims:
        causes.append(
            f"latent too small: {fmt(dims)} dims <= small_latent_dims="
            f"{fmt(th.small_latent_dims)} (F4)"
        )
    dg.say(
        "Likely causes: "
        + ("; ".join(causes) if causes else "none of the known ones found in the logged evidence")
        + "."
    )
    return MALIGNANT


def _gan_window(dg: _Diagnoser) -> tuple[float, float] | None:
    """(gan_start, window length) when gan_start lies inside the logged steps."""
    gs = dg.run.gan_start
    if gs is None:
        return None
    dg.ev("gan_start", gs)
    if not dg.x0 < gs < dg.x1:
        dg.say(
            f"gan_start={fmt(gs)} is outside the logged steps [{fmt(dg.x0)}, {fmt(dg.x1)}]:"
            " no before/after comparison."
        )
        return None
    return gs, dg.th.plateau_window_frac * dg.span


def _gan_plateau(dg: _Diagnoser, gs: float, w: float) -> None:
    """KL slope before vs after gan_start (G3) and where the adversarial gradient goes (G2)."""
    kl, th = dg.s("train/kl"), dg.th
    assert kl is not None
    kl_gs = dg.ev("kl_at_gan_start", level(kl, gs - th.edge_frac * dg.span, gs))
    before = fit_slope(kl, gs - w, gs, th.min_window_points)
    after = fit_slope(kl, gs, gs + w, th.min_window_points)
    if before is None or after is None:
        dg.say("Too few KL points around gan_start to compare slopes.")
        return
    dg.ev("kl_slope_before_gan", before)
    dg.ev("kl_slope_after_gan", after)
    rb = dg.ev("kl_rel_slope_before_gan", before * w / max(abs(kl_gs), 1e-12))
    ra = dg.ev("kl_rel_slope_after_gan", after * w / max(abs(kl_gs), 1e-12))
    # KL saturating on its own also slows down: compare with the deceleration seen before GAN.
    earlier = fit_slope(kl, gs - 2 * w, gs - w, th.min_window_points)
    trend = float(np.clip(before / earlier, 0.0, 1.0)) if earlier and earlier > 0 < before else 1.0
    dg.ev("kl_slope_ratio_pre_gan", trend)
    nums = (
        f"KL slope {fmt(before)} -> {fmt(after)} nats/step, i.e. {fmt(rb)} -> {fmt(ra)} of"
        f" the KL level at gan_start ({fmt(kl_gs)}) per {fmt(w)}-step window"
    )
    if rb <= th.kl_growth:
        state = "already flattened" if rb >= -th.kl_growth else "been falling"
        dg.say(f"KL had {state} before GAN start ({nums}); no causal claim.")
    elif ra <= th.plateau_ratio * rb * trend:
        dg.d.flags.append(FLAG_PLATEAU)
        dg.say(
            f"KL flattened after GAN start: {nums}; the pre-GAN trend (slope x{fmt(trend)}"
            f" per window) predicted {fmt(rb * trend)} (plateau_ratio={fmt(th.plateau_ratio)})."
        )
    elif ra <= th.plateau_ratio * rb:
        dg.say(
            f"KL slowed after GAN start ({nums}) but no more than its pre-GAN deceleration"
            f" (slope x{fmt(trend)} per window) predicts: KL is saturating on its own;"
            " no causal claim."
        )
    else:
        dg.say(f"KL did not flatten after GAN start: {nums}.")
    _grad_shares(dg, gs, w)


def last_step_before(gan_start: float) -> float:
    """Upper bound of a before-GAN window: step `gan_start` itself already has the GAN on."""
    return gan_start - 0.5


def grad_means(run: Run, lo: float, hi: float) -> dict[str, tuple[float, float]]:
    """Mean (encoder, decoder) gradient norm per loss term over [lo, hi]."""
    out = {}
    for term in GRAD_TERMS:
        enc, dec = run.get(f"grad/{term}/encoder"), run.get(f"grad/{term}/decoder")
        if enc is None or dec is None:
            continue
        e, d = enc.between(lo, hi), dec.between(lo, hi)
        if len(e) and len(d):
            out[term] = (float(e.y.mean()), float(d.y.mean()))
    return out


def _grad_shares(dg: _Diagnoser, gs: float, w: float) -> None:
    after = grad_means(dg.run, gs, gs + w)
    shares = {t: e / max(e + d, 1e-30) for t, (e, d) in after.items()}
    for term, share in shares.items():
        dg.ev(f"grad_{term}_encoder_share_after_gan", share)
    before = grad_means(dg.run, gs - w, last_step_before(gs))
    for label, means in (("before", before), ("after", after)):
        total = sum(e for e, _ in means.values())
        if "kl" in means and total > 0:
            dg.ev(f"grad_kl_share_of_encoder_{label}_gan", means["kl"][0] / total)
    if "adv" not in shares or "rec" not in shares:
        return
    adv, rec = shares["adv"], shares["rec"]
    verdict = (
        "consistent with G2 (adversarial gradients act mainly on the decoder)"
        if adv < rec
        else "not consistent with G2"
    )
    dg.say(
        f"After GAN start the adversarial gradient norm falls {fmt(adv)} on the encoder"
        f" (encoder/(encoder+decoder)) vs {fmt(rec)} for the rec term: {verdict}."
    )


_QUALITY = (("train/rec", False), ("val/rec", False), ("val/lpips", False), ("val/psnr", True))


def _gan_overweighted(dg: _Diagnoser, gs: float) -> None:
    """W1: reconstruction quality at the end vs at gan_start."""
    th = dg.th
    worse = []
    for name, higher_better in _QUALITY:
        s = dg.s(name)
        if s is None or s.x[0] >= gs or s.x[-1] <= gs:
            continue
        pre = s.between(-np.inf, gs)
        at = level(pre, gs - th.edge_frac * dg.span, gs)
        end = dg.final(name)
        assert end is not None
        if higher_better:
            change, bad = dg.ev(f"{name}_drop_after_gan", at - end), at - end > th.gan_psnr_drop_db
            unit = f"dropped by {fmt(change)} dB (gan_psnr_drop_db={fmt(th.gan_psnr_drop_db)})"
        else:
            change = dg.ev(f"{name}_change_after_gan", (end - at) / max(abs(at), 1e-12))
            bad = change > th.gan_rec_worsen
            unit = f"changed by {fmt(change)} (gan_rec_worsen={fmt(th.gan_rec_worsen)})"
        if bad:
            worse.append(f"{name} {fmt(at)} at gan_start -> {fmt(end)} at the end, {unit}")
    if worse:
        if FLAG_GAN_HEAVY not in dg.d.flags:  # the pair may have flagged it already
            dg.d.flags.append(FLAG_GAN_HEAVY)
        dg.say(
            "Reconstruction got worse after GAN start (W1: adversarial weight too large?): "
            + "; ".join(worse)
            + "."
        )
