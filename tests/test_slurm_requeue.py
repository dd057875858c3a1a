"""Pre-emption on a real scheduler: the job is stopped, requeued, and resumes exactly.

Three one-task jobs of `scripts/slurm/train.sbatch` with the exact-resume settings
(tests/helpers/resume.py) start together: one runs straight through, the other two pause after
generator step N - 1 (``PauseAt``: it only waits) until they are pre-empted, by
`scontrol requeue` (SIGTERM, back to the queue) or by SLURM's pre-timeout signal
(`--signal=USR1@600`, the template's `USR1@120` with more room: the run checkpoints and
requeues itself). For the latter the test moves the job's time limit to ~10 minutes ahead, so
that the signal comes at SLURM's next time-limit check instead of in an hour. Each requeued
job runs again under the same job id, resumes from the checkpoint the signal wrote
(`ckpt_path=last`, same run dir), and must end with the straight run's curves at every step
and its final weights. SLURM holds a requeued job for 120 s (BeginTime); the tests release it
at once. Skipped without a cluster (`make test-slurm` starts one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.metrics import read_metrics
from tests.helpers.resume import COMMON, N, assert_same_run
from tests.helpers.slurm import (
    CPU_JOB,
    EXE,
    SBATCH,
    TIMEOUT_S,
    assert_completed,
    bring_time_limit_near,
    cancel,
    job_env,
    log_of,
    requeue,
    sbatch,
    set_time_limit,
    wait_for,
    wait_for_file,
)
from vaegan.vocab import metric_names as metric

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN = (
    "trainer.accelerator=cpu", "debug=tiny", *COMMON, f"steps={2 * N}",
    "callbacks.checkpoint.every_n_gen_steps=100",  # no periodic save: the signal's only
)
# SIGUSR1 this long before the limit: the step, the checkpoint and the requeue fit in it even
# on busy cores (the template's 120 s is the same signal; SLURM may send it up to 60 s early)
SIGNAL_S = 600
PAUSE = ("+callbacks.pause._target_=tests.helpers.probes.PauseAt",
         f"+callbacks.pause.gen_step={N - 1}", f"+callbacks.pause.seconds={2 * TIMEOUT_S}")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Iterator[dict[str, tuple[str, Path]]]:
    """name -> (job id, run dir): the three jobs, submitted at once."""
    root = tmp_path_factory.mktemp("requeue")
    env = job_env(VAEGAN_TRAIN=str(EXE))
    out = {}
    for name in ("signalled", "requeued", "straight"):  # 2 CPUs: the straight one waits
        extra = PAUSE if name != "straight" else ()
        job = sbatch(root, f"--job-name={name}", "--ntasks-per-node=1", *CPU_JOB, "--time=60",
                     f"--signal=USR1@{SIGNAL_S}", str(SBATCH), *RUN, *extra, env=env)
        out[name] = job, root / "outputs" / "slurm" / f"{name}-{job}"
    yield out
    cancel(*(job for job, _ in out.values()))


def straight(jobs) -> Path:
    """The uninterrupted run, once it has finished (not a fixture: it needs a free CPU, which
    the paused jobs hold until the test pre-empts them)."""
    job, run_dir = jobs["straight"]
    assert_completed(wait_for(job), restarts=0)
    return run_dir


def assert_resumed_once(run_dir: Path, stopped_by: str, log: str) -> int:
    """Two parts in one run dir: the first stopped by ``stopped_by`` with a checkpoint, the
    second resumed from it; every generator step trained (and logged) exactly once."""
    assert "restart 0" in log and "restart 1" in log, log  # one output file, appended
    line = next(x for x in log.splitlines() if x.startswith(f"stopped by {stopped_by} after"))
    assert line.endswith(f"{run_dir}/checkpoints/last.ckpt; to continue, run the same command "
                         "with ckpt_path=last (same run dir)"), line
    cut = int(line.split("generator step ")[1].split(":")[0])
    assert N <= cut < 2 * N  # after the pause, before the end
    rows = read_metrics(run_dir)
    steps = sorted(int(float(r["gen_step"])) for r in rows if r.get(metric.TRAIN_LOSS))
    assert steps == list(range(2 * N)), steps  # nothing lost, nothing trained twice
    assert json.loads((run_dir / "run_info.json").read_text())["status"] == "completed"
    return cut


def test_scontrol_requeue_checkpoints_and_the_requeued_job_resumes_exactly(jobs):
    job, run_dir = jobs["requeued"]
    wait_for_file(run_dir / "paused", job)
    requeue(job)  # what pre-emption does: SIGTERM now, the job back in the queue
    info = wait_for(job)
    assert_completed(info, restarts=1)
    assert_resumed_once(run_dir, "SIGTERM", log_of(info))
    assert_same_run(straight(jobs), [run_dir])


def test_pre_timeout_signal_checkpoints_requeues_and_resumes_exactly(jobs):
    job, run_dir = jobs["signalled"]
    wait_for_file(run_dir / "paused", job)
    bring_time_limit_near(job, SIGNAL_S + 30)  # SLURM sends USR1 at its next check
    info = wait_for(job, until=lambda info: info["JobState"] == "PENDING")
    assert info["JobState"] == "PENDING", info  # the run requeued its job
    set_time_limit(job, 60)  # and the requeued job has its hour again
    info = wait_for(job)
    assert_completed(info, restarts=1)  # requeued once, by the run itself
    assert_resumed_once(run_dir, "SIGUSR1", log_of(info))
    assert f"requeue {job}: ok" in (run_dir / "train.log").read_text()
    assert_same_run(straight(jobs), [run_dir])
