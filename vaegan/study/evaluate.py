"""Judge every claim of the study on its finished runs (no training, no plotting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaegan.analysis.runs import Run, RunDirError, load_run
from vaegan.study.config import Claim, Study, Test
from vaegan.study.measures import MEASURES, WINDOW_PARAMS
from vaegan.study.rules import TestResult, claim_verdict, judge


@dataclass
class ClaimResult:
    claim: Claim
    tests: list[tuple[Test, TestResult]]
    verdict: str


class RunTable:
    """The study's runs by (arm, seed), loaded once; a missing or failed run is None."""

    def __init__(self, study: Study, failed: set[tuple[str, int]] | None = None) -> None:
        self.study = study
        self.failed = failed or set()
        self._runs: dict[tuple[str, int], Run | None] = {}

    def get(self, arm: str, seed: int) -> Run | None:
        key = (arm, seed)
        if key not in self._runs:
            self._runs[key] = None if key in self.failed else _load(self.study.run_dir(*key))
        return self._runs[key]

    def runs(self, arm: str) -> list[Run]:
        return [r for s in self.study.seeds if (r := self.get(arm, s)) is not None]

    def per_seed(self, arm: str, measure: str, args: Mapping[str, Any]
                 ) -> dict[int, float | None]:
        """The measure on every seed's run of `arm` (None where the run or value is missing)."""
        fn = MEASURES[measure]
        kwargs = {k: self.study.windows[v] if k in WINDOW_PARAMS else v for k, v in args.items()}
        out: dict[int, float | None] = {}
        for seed in self.study.seeds:
            run = self.get(arm, seed)
            out[seed] = None if run is None else fn(run, **kwargs)
        return out


def _load(path) -> Run | None:
    try:
        return load_run(path)
    except RunDirError:
        return None


def evaluate(study: Study, table: RunTable) -> list[ClaimResult]:
    """Every selected claim's tests and verdict, in the order of the config."""
    results = []
    for claim in study.claims.values():
        tests = []
        for test in claim.tests:
            def per_seed(arm: str, args: Mapping[str, Any], m: str = test.measure):
                return table.per_seed(arm, m, args)

            tests.append((test, judge(per_seed, test, study.confidence)))
        results.append(ClaimResult(claim, tests, claim_verdict([r.verdict for _, r in tests])))
    return results
