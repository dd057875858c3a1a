"""``python -m vaegan.study [scale=small|full|tiny] [key=value ...]`` (``make study``).

Trains every arm × seed the selected claims need (runs finished before with the same
overrides are kept), judges each claim by its rule in ``conf/study/study.yaml`` and writes
``REPORT.md`` + plots into the scale's ``out_dir`` (``study/`` for the default small scale).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra.errors import HydraException

from vaegan.study.config import StudyConfigError, load_study
from vaegan.study.report import write_study_report
from vaegan.study.runner import run_jobs


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        study = load_study(args)
    except (StudyConfigError, ValueError, HydraException) as err:
        print(f"vaegan.study: error: {err}", file=sys.stderr)
        return 2
    jobs = study.jobs()
    print(f"KL study, scale={study.scale}: {len(study.claims)} claims,"
          f" {len(study.needed_arms())} arms x {len(study.seeds)} seeds = {len(jobs)} runs of"
          f" {study.steps} steps under {study.runs_dir}")
    results = run_jobs(jobs, fresh=study.fresh, workers=study.workers, threads=study.threads)
    report = write_study_report(study, results)
    print(f"report: {report}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} run(s) failed; their claims are inconclusive where they needed them",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
