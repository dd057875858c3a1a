"""Per-run numbers the claim rules are made of: one float per run (or None when not logged).

Each measure reads a `Run` (from `vaegan.analysis`) over *windows*: fractions of the run's
length in generator steps, so the same rule reads the same phase of training at every scale.
Raw series are averaged over a window (no smoothing: a window mean is already robust and its
noise is what the interval over seeds measures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vaegan.analysis.diagnose import diagnose, grad_means, rel_change
from vaegan.analysis.runs import Run
from vaegan.vocab import metric_names

Window = tuple[float, float]  # fractions of the run's steps, half-open: [0.9, 1.0)
MIN_POINTS = 3  # a slope needs this many logged points in its window
_OPEN = 0.5  # steps are integers: [lo, hi) is [lo, hi - 0.5] (a window ending at gan_start
#              holds no GAN step)


def run_steps(run: Run) -> float:
    """Training length in generator steps: the configured `steps`, else the last logged step."""
    steps = run.info.get("steps") or run.cfg("steps")
    return float(steps) if steps else run.x_range[1]


def bounds(run: Run, window: Window) -> tuple[float, float]:
    """A window in absolute generator steps, as the closed range [lo, hi - 0.5]."""
    steps = run_steps(run)
    return window[0] * steps, window[1] * steps - _OPEN


def _in_window(run: Run, metric: str, window: Window) -> np.ndarray | None:
    """The values of `metric` logged inside the window; None when there are none."""
    series = run.get(metric)
    if series is None:
        return None
    inside = series.between(*bounds(run, window))
    return inside.y if len(inside) else None


def mean(run: Run, metric: str, window: Window) -> float | None:
    """Mean of `metric` over the window; None when it has no point there."""
    values = _in_window(run, metric, window)
    return None if values is None else float(values.mean())


def minimum(run: Run, metric: str, window: Window) -> float | None:
    """Lowest value of `metric` over the window (e.g. the lowest log σ² reached)."""
    values = _in_window(run, metric, window)
    return None if values is None else float(values.min())


def exp_mean(run: Run, metric: str, window: Window) -> float | None:
    """exp of the window mean of a log-scale metric: from `latent/logvar_mean` the geometric
    mean of σ², the typical σ² (an arithmetic mean of σ² is ruled by its few largest)."""
    value = mean(run, metric, window)
    return None if value is None else float(np.exp(value))


def count_frac(run: Run, metric: str) -> float | None:
    """A running count's last value per GAN step (e.g. adaptive-weight clamp hits)."""
    series, gan_start = run.get(metric), run.gan_start
    steps = run_steps(run)
    if series is None or gan_start is None or steps <= gan_start:
        return None
    return series.last / (steps - gan_start)


def ratio(run: Run, metric: str, window: Window, over: Window) -> float | None:
    """Mean over `window` divided by the mean over `over` (e.g. KL late / KL at the start)."""
    numerator, denominator = mean(run, metric, window), mean(run, metric, over)
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def change(run: Run, metric: str, window: Window) -> float | None:
    """Least-squares slope × window length / the window's level: 0.1 = moved by 10 % of its
    level across the window (the definition `vaegan-diagnose` uses)."""
    series = run.get(metric)
    if series is None:
        return None
    return rel_change(series, *bounds(run, window), MIN_POINTS)


def slowdown(run: Run, metric: str, window: Window, over: Window, floor: float
             ) -> float | None:
    """|change over `window`| / max(the change `over`'s pace would give over `window`,
    `floor`): below 1 when the metric moved less over `window` than at its earlier pace, or
    less than `floor` (a metric that was already flat). "Is a plateau forming?"."""
    now, before = change(run, metric, window), change(run, metric, over)
    if now is None or before is None:
        return None
    at_earlier_pace = abs(before) * (window[1] - window[0]) / (over[1] - over[0])
    return abs(now) / max(at_earlier_pace, floor)


def per_dim(run: Run, metric: str, window: Window) -> float | None:
    """Window mean divided by the number of latent dims (KL per dim across latent sizes)."""
    value, dims = mean(run, metric, window), run.latent_dims
    return None if value is None or not dims else value / dims


def part_of_rise(run: Run, part: str, total: str, window: Window, over: Window) -> float | None:
    """Share of the rise of `total` from `over` to `window` that `part` accounts for."""
    part_end, part_start = mean(run, part, window), mean(run, part, over)
    total_end, total_start = mean(run, total, window), mean(run, total, over)
    if None in (part_end, part_start, total_end, total_start) or total_end == total_start:
        return None
    return (part_end - part_start) / (total_end - total_start)


def encoder_share(run: Run, terms: Sequence[str] | str, window: Window) -> float | None:
    """Encoder part of the `terms`' gradient norms: Σ encoder / Σ (encoder + decoder)."""
    means = grad_means(run, *bounds(run, window))
    picked = [means[term] for term in _terms(terms) if term in means]
    if not picked:
        return None
    total = sum(encoder + decoder for encoder, decoder in picked)
    return sum(encoder for encoder, _ in picked) / total if total > 0 else None


def encoder_share_of(run: Run, term: str, window: Window) -> float | None:
    """`term`'s share of the encoder's gradient: its encoder norm / Σ over all terms'."""
    means = grad_means(run, *bounds(run, window))
    total = sum(encoder for encoder, _ in means.values())
    if term not in means or total <= 0:
        return None
    return means[term][0] / total


def push(run: Run, term: str, window: Window, part: str = metric_names.KL_PUSH) -> float | None:
    """Window mean of `term`'s KL push (`grad/<term>/<part>`): nats of KL per unit lr that an
    Adam step along that weighted term alone would add (positive: the term pushes KL up)."""
    return mean(run, metric_names.grad(term, part), window)


def push_sum(run: Run, terms: Sequence[str] | str, window: Window, part: str = metric_names.KL_PUSH
             ) -> float | None:
    """The `terms`' pushes added up (pushes are linear in the loss: the sum is the push of
    those terms together); None unless every term was logged."""
    pushes = [push(run, term, window, part) for term in _terms(terms)]
    return None if any(p is None for p in pushes) else float(sum(pushes))


def push_share(run: Run, term: str, against: Sequence[str] | str, window: Window,
               part: str = metric_names.KL_PUSH) -> float | None:
    """`term`'s push over Σ |push| of the `against` terms (a ratio of window sums), signed:
    -0.5 = the term pulls KL down half as hard as the others together push it."""
    own = push(run, term, window, part)
    others = [push(run, other, window, part) for other in _terms(against)]
    if own is None or any(p is None for p in others):
        return None
    scale = sum(abs(p) for p in others)
    return own / scale if scale > 0 else None


def verdict_is(run: Run, verdict: str) -> float | None:
    """1.0 when `vaegan-diagnose` (default thresholds) gives this verdict, else 0.0."""
    return float(diagnose(run).verdict == verdict)


def _terms(terms: Sequence[str] | str) -> list[str]:
    return [terms] if isinstance(terms, str) else list(terms)


MEASURES: dict[str, Callable[..., float | None]] = {
    "mean": mean,
    "exp_mean": exp_mean,
    "min": minimum,
    "count_frac": count_frac,
    "ratio": ratio,
    "change": change,
    "slowdown": slowdown,
    "per_dim": per_dim,
    "part_of_rise": part_of_rise,
    "encoder_share": encoder_share,
    "encoder_share_of": encoder_share_of,
    "push": push,
    "push_sum": push_sum,
    "push_share": push_share,
    "verdict_is": verdict_is,
}
WINDOW_PARAMS = ("window", "over")  # parameters that name a window of the study config

