"""Judge every claim of the study on its finished runs, per regime (no training, no plots)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vaegan.analysis.runs import Run, RunDirError, load_run
from vaegan.study.config import NOGAN, Claim, Study, split_ref
from vaegan.study.measures import MEASURES, WINDOW_PARAMS
from vaegan.study.pairs import nogan_view
from vaegan.study.rules import (
    NOT_RUN,
    Test,
    TestResult,
    claim_marginal,
    claim_verdict,
    judge,
    shown,
)
from vaegan.study.stats import Interval

Loader = Callable[[str, str, int], Run | None]  # (regime, role, seed) -> the arm's run


@dataclass
class ClaimResult:
    claim: Claim
    regime: str
    tests: list[tuple[Test, TestResult]]
    verdict: str
    marginal: bool = False  # the verdict rests on tests decided by less than the resolution
    horizon: float | None = None  # the study's `horizon` measure in this regime, seed mean

    @property
    def shown(self) -> str:
        return shown(self.verdict, self.marginal)


class RunTable:
    """The study's runs by (regime, arm, seed), loaded once; a missing or failed run is None.

    An arm reference is ``role`` (the run; for a GAN arm, its GAN branch) or ``role@nogan``
    (the no-GAN trajectory, `vaegan.study.pairs.nogan_view`).
    """

    def __init__(self, study: Study, failed: set[tuple[str, int]] | None = None,
                 load: Loader | None = None) -> None:
        self.study = study
        self.failed = failed or set()
        self._load = load or self._from_disk
        self._runs: dict[tuple[str, str, int], Run | None] = {}

    def _from_disk(self, regime: str, role: str, seed: int) -> Run | None:
        arm = self.study.arm(regime, role)
        if arm is None or (arm.key, seed) in self.failed:
            return None
        try:
            return load_run(self.study.run_dir(arm, seed))
        except RunDirError:
            return None

    def get(self, regime: str, ref: str, seed: int) -> Run | None:
        role, view = split_ref(ref)
        key = (regime, role, seed)
        if key not in self._runs:
            self._runs[key] = self._load(regime, role, seed)
        run = self._runs[key]
        if run is None or view != NOGAN:
            return run
        return nogan_view(run)

    def seeds(self, regime: str, ref: str) -> tuple[int, ...]:
        """The seeds the referenced arm ran with."""
        return self.study.seeds_of(f"{regime}/{split_ref(ref)[0]}")

    def runs(self, regime: str, ref: str) -> list[Run]:
        return [run for seed in self.seeds(regime, ref)
                if (run := self.get(regime, ref, seed)) is not None]

    def per_seed(self, regime: str, ref: str, measure: str, args: Mapping[str, Any]
                 ) -> dict[int, float | None]:
        """The measure on every seed's run (None where the run or the value is missing)."""
        measure_of = MEASURES[measure]
        kwargs = {name: self.study.windows[value] if name in WINDOW_PARAMS else value
                  for name, value in args.items()}
        out: dict[int, float | None] = {}
        for seed in self.seeds(regime, ref):
            run = self.get(regime, ref, seed)
            out[seed] = None if run is None else measure_of(run, **kwargs)
        return out


def resolution(study: Study) -> float:
    """The study's resolution: a verdict decided by less is marginal (0: never)."""
    return float(study.raw.get("resolution") or 0.0)


def horizon(study: Study, table: RunTable, regime: str) -> float | None:
    """The study's `horizon` measure (KL's before-GAN change of the base arm) in `regime`,
    mean over the seeds that have it; None without the arm or the spec."""
    spec = study.raw.get("horizon")
    if not spec or study.arm(regime, split_ref(spec["arm"])[0]) is None:
        return None
    values = table.per_seed(regime, spec["arm"], spec["measure"], spec.get("args") or {})
    found = [value for value in values.values() if value is not None]
    return sum(found) / len(found) if found else None


def judge_claim(study: Study, table: RunTable, claim: Claim, regime: str) -> ClaimResult:
    """A claim's tests and verdict in one regime (tests on arms it lacks: not run)."""
    tests = []
    for test in claim.tests:
        if not study.applies(test, regime):
            nan = float("nan")
            tests.append((test, TestResult({}, Interval(nan, nan, nan, 0), NOT_RUN,
                                           "the regime has no such arm")))
            continue

        def per_seed(ref: str, measure: str, args: Mapping[str, Any]):
            return table.per_seed(regime, ref, measure, args)

        tests.append((test, judge(per_seed, test, study.confidence, resolution(study))))
    verdict = claim_verdict([result.verdict for _, result in tests])
    decisive = [(result.verdict, result.marginal) for test, result in tests if test.decisive]
    return ClaimResult(claim, regime, tests, verdict, claim_marginal(verdict, decisive),
                       horizon(study, table, regime))


def evaluate(study: Study, table: RunTable) -> list[ClaimResult]:
    """Every selected claim in every selected regime, in the order of the config."""
    return [judge_claim(study, table, claim, regime)
            for claim in study.claims.values() for regime in study.regimes]
