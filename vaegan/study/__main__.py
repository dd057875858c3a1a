"""``python -m vaegan.study [scale=small|full|tiny] [key=value ...]`` (``make study``).

Checks every arm's composed regime against its declaration, prints the plan and the time
estimate (``dry_run=true``: and stops there; with ``stub=true`` it also writes REPORT.md as
a "not yet run" report of the regimes, the plan and the rules), trains every arm × seed the
selected claims need (runs finished before with the same overrides are kept, so an
interrupted study resumes),
judges each claim per regime by its rule in ``conf/study/study.yaml`` and writes ``REPORT.md``
+ plots into the scale's ``out_dir`` (``study/`` for the default small scale).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra.errors import HydraException

from vaegan.study import invocations
from vaegan.study.config import Study, StudyConfigError, load_study
from vaegan.study.plan import plan, plan_text, prerequisites
from vaegan.study.provenance import Clock
from vaegan.study.regimes import check_arm
from vaegan.study.report import write_plan_report, write_study_report
from vaegan.study.runner import Job, JobResult, is_done, run_jobs


def other_parts(study: Study, trained: Sequence[Job]) -> list[JobResult]:
    """The runs of the scale's other parts: judged when finished, missing (and said so) when
    their part has not been run yet."""
    this = set(trained)
    return [JobResult(job, ok=True, seconds=0.0, cached=True) if is_done(job) else
            JobResult(job, ok=False, seconds=0.0, error="not trained yet (another part)")
            for job in study.all_jobs() if job not in this]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        study = load_study(args)
        problems = [p for arm in study.needed_arms() for p in check_arm(study, arm)]
    except (StudyConfigError, ValueError, HydraException) as err:
        print(f"vaegan.study: error: {err}", file=sys.stderr)
        return 2
    if problems:
        print("vaegan.study: error: declared and composed regimes differ:\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return 2
    planned = plan(study)
    print(f"KL study, scale={study.scale}: {len(study.claims)} claims x"
          f" {len(study.regimes)} regimes ({', '.join(study.regimes)}), runs under"
          f" {study.runs_dir}")
    print(plan_text(study, planned))
    if study.dry_run:
        if study.raw.get("stub"):
            print(f"not-yet-run report: {write_plan_report(study, plan_text(study, planned))}")
        return 0
    missing = prerequisites(study)
    if missing:
        print("vaegan.study: error: " + "; ".join(missing), file=sys.stderr)
        return 2
    clock = Clock()
    print(f"started {clock.start:%Y-%m-%d %H:%M:%S} UTC, load average {clock.loads[0]:.2f}")
    jobs = [p.job for p in planned]  # longest first: the packing the estimate assumes
    results = run_jobs(jobs, fresh=study.fresh, workers=study.workers, threads=study.threads)
    clock.stop()
    print(clock.text())
    invocations.record(study, results, clock)
    report = write_study_report(study, [*results, *other_parts(study, jobs)], clock)
    print(f"report: {report}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} run(s) failed; their claims are inconclusive where they needed them",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
