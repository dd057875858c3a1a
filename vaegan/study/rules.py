"""Decision rules: per-seed numbers → a t-interval → supported / not supported / inconclusive.

A rule decides only when the whole interval over seeds lies in its supporting or its refuting
band, so noise between seeds (or a single seed) yields "inconclusive" rather than a coin-flip.
Every decisive rule has both bands, disjoint, so data can land on either side; and gates,
preconditions checked on every seed, that make the rule meaningful: an unmet gate gives
"inconclusive (gate: ...)", never a refutation. A verdict whose deciding interval bound lies
within the study's *resolution* of its threshold is shown as "marginal (supported)": the
line, not the data, decided it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaegan.study.stats import Interval, t_interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, REPORTED = (
    "supported", "not supported", "inconclusive", "reported")
NOT_RUN = "not run in this regime"  # the regime lacks an arm the test reads


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

    def holds_value(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.kind == ">":
            return value > self.a
        if self.kind == "<":
            return value < self.a
        if self.kind == "within":
            return self.a < value < self.b
        return value < self.a or value > self.b

    def holds(self, interval: Interval) -> bool:
        """True when every value of the interval satisfies the condition."""
        if interval.n == 0 or math.isnan(interval.lo) or math.isnan(interval.hi):
            return False
        if self.kind == ">":
            return interval.lo > self.a
        if self.kind == "<":
            return interval.hi < self.a
        if self.kind == "within":
            return self.a < interval.lo and interval.hi < self.b
        return interval.hi < self.a or interval.lo > self.b

    def margin(self, interval: Interval, log: bool = False) -> float:
        """How far inside this band the interval's deciding bound lies, relative to the
        threshold it passed: |bound − threshold| / |threshold| (a threshold at 0: absolute),
        or |log(bound / threshold)| on a log scale. Only meaningful when `holds`."""
        lo, hi = interval.lo, interval.hi
        if self.kind == ">":
            return _distance(lo, self.a, log)
        if self.kind == "<":
            return _distance(hi, self.a, log)
        if self.kind == "within":
            return min(_distance(lo, self.a, log), _distance(hi, self.b, log))
        return _distance(hi, self.a, log) if hi < self.a else _distance(lo, self.b, log)

    def _edges(self) -> list[float]:
        return [self.a] if math.isnan(self.b) else [self.a, self.b]

    def overlaps(self, other: Condition) -> bool:
        """Whether some value satisfies both (exact: the sets are unions of open intervals, so
        probing between and beyond all thresholds finds any common point)."""
        edges = sorted(set(self._edges() + other._edges()))
        probes = [edges[0] - 1.0, edges[-1] + 1.0]
        probes += [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:], strict=False)]
        return any(self.holds_value(p) and other.holds_value(p) for p in probes)

    def __str__(self) -> str:
        return f"{self.kind} {self.a:g}" + ("" if math.isnan(self.b) else f" {self.b:g}")


def _distance(bound: float, threshold: float, log: bool) -> float:
    if log and bound > 0 and threshold > 0:
        return abs(math.log(bound / threshold))
    return abs(bound - threshold) / (abs(threshold) or 1.0)


def shown(verdict: str, marginal: bool) -> str:
    """The verdict as printed: ``marginal (supported)`` when a margin below the resolution
    decided it."""
    return f"marginal ({verdict})" if marginal else verdict


@dataclass(frozen=True)
class Gate:
    """A precondition of a test: ``measure`` on ``arm`` satisfies ``holds`` on every seed."""

    what: str
    arm: str
    measure: str
    args: dict[str, Any]
    holds: Condition


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    values: dict[int, float | None]

    @property
    def met(self) -> bool:
        values = list(self.values.values())
        return bool(values) and all(
            value is not None and self.gate.holds.holds_value(value) for value in values)

    def text(self) -> str:
        values = ", ".join("–" if value is None else f"{value:.3g}"
                           for value in self.values.values())
        return f"{self.gate.what}: {values} ({'met' if self.met else 'NOT met'}, needs" \
               f" {self.gate.holds} on every seed)"


@dataclass(frozen=True)
class Test:
    """One statistic of a claim (see ``conf/study/study.yaml`` for the semantics)."""

    what: str
    arm: str
    measure: str
    args: dict[str, Any]
    vs: str | None = None
    vs_args: dict[str, Any] = field(default_factory=dict)
    op: str = "value"
    supported: Condition | None = None
    refuted: Condition | None = None
    gates: tuple[Gate, ...] = ()
    resolution: float | None = None  # this test's own resolution (None: the study's)

    @property
    def decisive(self) -> bool:
        return self.supported is not None or self.refuted is not None

    @property
    def arms(self) -> tuple[str, ...]:
        """Every arm reference the test reads, its gates' included."""
        own = (self.arm,) if self.vs is None else (self.arm, self.vs)
        return own + tuple(g.arm for g in self.gates)

    @property
    def log(self) -> bool:
        """Ratios are skewed: their interval is taken on a log scale."""
        return self.op == "ratio" or (self.op == "value" and self.measure == "ratio")


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
    for seed, a_value in a.items():
        value = combine(op, a_value, b.get(seed)) if op != "value" else a_value
        if value is not None and math.isfinite(value):
            out[seed] = value
    return out


def decide(interval: Interval, supported: Condition | None, refuted: Condition | None) -> str:
    """The verdict of one test from its interval."""
    if supported is None and refuted is None:
        return REPORTED
    if supported is not None and supported.holds(interval):
        return SUPPORTED
    if refuted is not None and refuted.holds(interval):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def is_marginal(verdict: str, interval: Interval, test: Test, resolution: float) -> bool:
    """Whether the band that decided `verdict` held by less than `resolution`."""
    band = {SUPPORTED: test.supported, NOT_SUPPORTED: test.refuted}.get(verdict)
    return band is not None and band.margin(interval, test.log) < resolution


def claim_marginal(verdict: str, results: Sequence[tuple[str, bool]]) -> bool:
    """Whether a claim's verdict rests on marginal tests (``results``: (verdict, marginal)
    per test): supported with any supporting test marginal, or refuted only marginally."""
    if verdict == SUPPORTED:
        return any(marginal for v, marginal in results if v == SUPPORTED)
    if verdict == NOT_SUPPORTED:
        return all(marginal for v, marginal in results if v == NOT_SUPPORTED)
    return False


def claim_verdict(verdicts: Sequence[str]) -> str:
    """All decisive tests supported → supported; any refuted → not supported; else inconclusive
    (a regime that ran none of the decisive tests: not run)."""
    decisive = [verdict for verdict in verdicts if verdict not in (REPORTED, NOT_RUN)]
    if not decisive:
        return NOT_RUN if NOT_RUN in verdicts else INCONCLUSIVE
    if all(verdict == SUPPORTED for verdict in decisive):
        return SUPPORTED
    if NOT_SUPPORTED in decisive:
        return NOT_SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class TestResult:
    """A test's per-seed values, interval, gates and verdict (``missing``: why undecided)."""

    values: dict[int, float]
    interval: Interval
    verdict: str
    missing: str = ""
    gates: tuple[GateResult, ...] = ()
    marginal: bool = False  # decided by less than the resolution

    @property
    def shown(self) -> str:
        return shown(self.verdict, self.marginal)


PerSeed = Callable[[str, str, Mapping[str, Any]], dict[int, float | None]]


def judge(per_seed: PerSeed, test: Test, confidence: float, resolution: float = 0.0
          ) -> TestResult:
    """Evaluate one test; ``per_seed(arm, measure, args)`` gives a measure for every seed;
    ``resolution``: the study's (a test's own overrides it), below which a verdict is
    marginal."""
    arm_values = per_seed(test.arm, test.measure, test.args)
    vs_values = per_seed(test.vs or test.arm, test.measure, {**test.args, **test.vs_args}) \
        if test.op != "value" else {}
    values = paired(test.op, arm_values, vs_values)
    interval = t_interval(list(values.values()), confidence, log=test.log)
    gates = tuple(GateResult(gate, per_seed(gate.arm, gate.measure, gate.args))
                  for gate in test.gates)
    verdict = decide(interval, test.supported, test.refuted)
    missing = ""
    if not values:
        sides = [test.arm] + ([test.vs or test.arm] if test.op != "value" else [])
        missing = f"no value: not logged or the window holds no point ({', '.join(sides)})"
    elif interval.n < 2:
        missing = "one seed only: no interval, no decision"
    elif verdict == INCONCLUSIVE:
        missing = "interval straddles the bands"
    unmet = [gate for gate in gates if not gate.met]
    if unmet and verdict != REPORTED:
        verdict = INCONCLUSIVE
        missing = "gate: " + "; ".join(result.gate.what for result in unmet)
    own = test.resolution if test.resolution is not None else resolution
    marginal = is_marginal(verdict, interval, test, own)
    return TestResult(values, interval, verdict, missing, gates, marginal)
