"""Decision rules: per-seed numbers → a t-interval → supported / not supported / inconclusive.

A rule decides only when the whole interval over seeds is on one side of its threshold, so
noise between seeds (or a single seed) yields "inconclusive" rather than a coin-flip verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vaegan.study.stats import Interval, t_interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, REPORTED = (
    "supported", "not supported", "inconclusive", "reported")


@dataclass(frozen=True)
class Condition:
    """``> v``, ``< v``, ``within a b`` or ``outside a b``, judged on a whole interval."""

    kind: str
    a: float
    b: float = math.nan

    @classmethod
    def parse(cls, text: str) -> Condition:
        parts = str(text).split()
        try:
            if len(parts) == 2 and parts[0] in (">", "<"):
                return cls(parts[0], float(parts[1]))
            if len(parts) == 3 and parts[0] in ("within", "outside"):
                a, b = float(parts[1]), float(parts[2])
                if a < b:
                    return cls(parts[0], a, b)
        except ValueError:
            pass
        raise ValueError(f"condition {text!r}: use '> v', '< v', 'within a b' or 'outside a b'"
                         " (a < b)")

    def holds(self, iv: Interval) -> bool:
        """True when every value of the interval satisfies the condition."""
        if iv.n == 0 or math.isnan(iv.lo) or math.isnan(iv.hi):
            return False
        if self.kind == ">":
            return iv.lo > self.a
        if self.kind == "<":
            return iv.hi < self.a
        if self.kind == "within":
            return self.a < iv.lo and iv.hi < self.b
        return iv.hi < self.a or iv.lo > self.b

    def __str__(self) -> str:
        return f"{self.kind} {self.a:g}" + ("" if math.isnan(self.b) else f" {self.b:g}")


def combine(op: str, a: float | None, b: float | None) -> float | None:
    """One per-seed statistic from the arm's value ``a`` and the comparison's ``b``."""
    if op == "value":
        return a
    if a is None or b is None:
        return None
    if op == "diff":
        return a - b
    if op == "ratio":
        return a / b if b != 0 and a / b > 0 else None
    raise ValueError(f"op {op!r}: use value, ratio or diff")


def paired(op: str, a: Mapping[int, float | None], b: Mapping[int, float | None]
           ) -> dict[int, float]:
    """Per-seed statistics over the seeds where both sides have a value."""
    out = {}
    for seed, va in a.items():
        value = combine(op, va, b.get(seed)) if op != "value" else va
        if value is not None and math.isfinite(value):
            out[seed] = value
    return out


def decide(iv: Interval, supported: Condition | None, refuted: Condition | None) -> str:
    """The verdict of one test from its interval."""
    if supported is None and refuted is None:
        return REPORTED
    if supported is not None and supported.holds(iv):
        return SUPPORTED
    if refuted is not None and refuted.holds(iv):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def claim_verdict(verdicts: Sequence[str]) -> str:
    """All decisive tests supported → supported; any refuted → not supported; else inconclusive."""
    decisive = [v for v in verdicts if v != REPORTED]
    if decisive and all(v == SUPPORTED for v in decisive):
        return SUPPORTED
    if NOT_SUPPORTED in decisive:
        return NOT_SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class TestResult:
    """A test's per-seed values, interval and verdict (``missing``: why values are absent)."""

    values: dict[int, float]
    interval: Interval
    verdict: str
    missing: str = ""


def judge(
    per_seed: Callable[[str, Mapping], dict[int, float | None]],
    test,  # vaegan.study.config.Test (not imported: config imports this module)
    confidence: float,
) -> TestResult:
    """Evaluate one test: ``per_seed(arm, args)`` gives the measure for every seed of an arm."""
    a = per_seed(test.arm, test.args)
    b = per_seed(test.vs or test.arm, {**test.args, **test.vs_args}) if test.op != "value" \
        else {}
    values = paired(test.op, a, b)
    iv = t_interval(list(values.values()), confidence, log=test.log)
    missing = ""
    if not values:
        sides = [test.arm] + ([test.vs or test.arm] if test.op != "value" else [])
        missing = f"no value: not logged or the window holds no point ({', '.join(sides)})"
    elif iv.n < 2:
        missing = "one seed only: no interval, no decision"
    return TestResult(values, iv, decide(iv, test.supported, test.refuted), missing)
