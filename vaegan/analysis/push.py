"""Reading the KL push (``grad/<term>/kl_push*``, vaegan/callbacks/kl_push.py) back from a run:
which loss term pushed KL up or down over a stretch of training, and through which part.

One measurement is one batch's first-order push, and batch to batch it is noisy: at β = 1e-6
the reconstruction's push swings by ~10x its median in both directions (measured on the long
horizon). So a stretch is summarised by the median and by how often the push was positive,
which say "which way" robustly, as well as by the mean, which adds up (the terms' means sum to
the loss's) but can be one outlier's."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vaegan.analysis.runs import Run
from vaegan.vocab import metric_names as metric

LABELS = {metric.REC: "reconstruction", metric.PERCEPTUAL: "LPIPS", metric.KL: "β·KL",
          metric.ADV: "adversarial"}


@dataclass(frozen=True)
class Push:
    """One term's mean KL push over a window (nats per unit lr, Adam-preconditioned)."""

    term: str
    total: float         # mean
    mu: float | None     # mean of the μ² part's push
    var: float | None    # mean of the variance part's push
    points: int
    median: float = 0.0
    up: float = 0.0      # fraction of measurements > 0


def push_means(run: Run, lo: float, hi: float) -> dict[str, Push]:
    """Every logged term's mean push over the generator steps [lo, hi]."""
    out = {}
    for term in metric.GRAD_TERMS:
        total = run.get(metric.grad(term, metric.KL_PUSH))
        if total is None or not len(inside := total.between(lo, hi)):
            continue
        parts = []
        for name in (metric.KL_PUSH_MU, metric.KL_PUSH_VAR):
            series = run.get(metric.grad(term, name))
            part = None if series is None else series.between(lo, hi)
            parts.append(float(part.y.mean()) if part is not None and len(part) else None)
        out[term] = Push(term, float(inside.y.mean()), *parts, len(inside),
                         float(np.median(inside.y)), float((inside.y > 0).mean()))
    return out


def sign_test(up: float, points: int) -> float:
    """Two-sided exact binomial p-value of ``up`` (a fraction of ``points``) against 1/2: how
    surprising that many positive pushes would be if the term had no direction."""
    k = round(up * points)
    tail = sum(math.comb(points, i) for i in range(min(k, points - k) + 1)) / 2**points
    return min(1.0, 2 * tail)


def direction(push: Push, alpha: float = 0.05) -> str:
    """"up" / "down" when the signs are consistent (sign test at ``alpha``), else "mixed"."""
    if sign_test(push.up, push.points) >= alpha:
        return "mixed"
    return "up" if push.up > 0.5 else "down"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3g}"


def push_sentence(label: str, pushes: dict[str, Push]) -> str:
    """E.g. "Before gan_start KL was pushed up by LPIPS (median +1.3e4, > 0 in 68 % of 50;
    mean +2.5e4: μ² +2.6e4, variance −1.4e3); down by β·KL (...); no consistent direction:
    reconstruction (...)". A direction needs the sign test (``direction``)."""
    by_way: dict[str, list[Push]] = {"up": [], "down": [], "mixed": []}
    for push in pushes.values():
        by_way[direction(push)].append(push)
    ups, downs, mixed = by_way["up"], by_way["down"], by_way["mixed"]

    def listed(items: list[Push]) -> str:
        ordered = sorted(items, key=lambda p: -abs(p.median))
        return ", ".join(f"{LABELS.get(p.term, p.term)} (median {_signed(p.median)}, > 0 in"
                         f" {p.up:.0%} of {p.points}; mean {_signed(p.total)}: μ²"
                         f" {_signed(p.mu)}, variance {_signed(p.var)})" for p in ordered)

    pieces = []
    if ups:
        pieces.append(f"pushed up by {listed(ups)}")
    if downs:
        pieces.append(f"pushed down by {listed(downs)}")
    if mixed:
        pieces.append(f"pushed with no consistent direction (sign test, p >= 0.05) by"
                      f" {listed(mixed)}")
    return f"{label} KL was " + "; ".join(pieces) + "."
