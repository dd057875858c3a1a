"""`gan_control=true` on a real scheduler: the pair survives a requeue in either branch.

Two jobs of `scripts/slurm/train.sbatch` train the same pair; one is pre-empted
(`scontrol requeue`) inside the GAN branch, the other inside the no-GAN control. Each requeued
job resumes its pair with the same command and finishes both branches, and each interrupted
branch must equal the other job's uninterrupted one at every step. Skipped without a cluster
(`make test-slurm` starts one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers.metrics import column, read_metrics
from tests.helpers.resume import final_state
from tests.helpers.slurm import (
    CPU_JOB,
    EXE,
    SBATCH,
    TIMEOUT_S,
    assert_completed,
    cancel,
    job_env,
    log_of,
    requeue,
    sbatch,
    wait_for,
    wait_for_file,
)
from vaegan.vocab import metric_names as metric

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS, GAN_START = 12, 6
PAIR = (
    "trainer.accelerator=cpu", "debug=tiny", f"steps={STEPS}", f"gan_start={GAN_START}",
    "gan_control=true", "~callbacks.images", "loss.objective.perceptual_weight=0",
    "data.num_patches=40", "trainer.val_check_interval=4",
    "callbacks.checkpoint.every_n_gen_steps=100",  # the signal's save is the only one
)
CURVES = (metric.TRAIN_LOSS, metric.TRAIN_KL, metric.TRAIN_REC, metric.TRAIN_KL_VAR,
          metric.TRAIN_BETA)


def pause_in(run_dir_name: str, gen_step: int) -> tuple[str, ...]:
    return ("+callbacks.pause._target_=tests.helpers.probes.PauseAt",
            f"+callbacks.pause.gen_step={gen_step}", f"+callbacks.pause.seconds={2 * TIMEOUT_S}",
            f"+callbacks.pause.run_dir_name={run_dir_name}")


def assert_same_branch(got: Path, want: Path, steps: range) -> None:
    """Every generator step trained once, with the other job's values, and the same weights."""
    rows = read_metrics(got)
    trained = sorted(int(float(r["gen_step"])) for r in rows if r.get(metric.TRAIN_LOSS))
    assert trained == list(steps), (got, trained)
    for name in CURVES:
        g, w = column(rows, name), column(read_metrics(want), name)
        assert sorted(g) == sorted(w) == list(steps), name
        for step in steps:
            assert g[step] == pytest.approx(w[step], rel=1e-6, abs=1e-9), (got, name, step)
    a, b = final_state(want), final_state(got)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-7, msg=key)


def test_a_pair_requeued_in_either_branch_finishes_both(tmp_path):
    # one job is pre-empted at step 8 of the GAN branch, the other at step 9 of the control;
    # RUN_DIR (train.sbatch) names the pair's dir, where the GAN branch pauses
    jobs = {}
    for name, pause in (("cut-in-gan", pause_in("cut-in-gan", 8)),
                        ("cut-in-control", pause_in("control", 9))):
        run_dir = tmp_path / name
        env = job_env(VAEGAN_TRAIN=str(EXE), RUN_DIR=str(run_dir))
        job = sbatch(tmp_path, f"--job-name={name}", "--ntasks-per-node=1", *CPU_JOB,
                     "--time=60", str(SBATCH), *PAIR, *pause, env=env)
        jobs[name] = job, run_dir
    try:
        for name, (job, run_dir) in jobs.items():
            paused = run_dir / ("control" if name == "cut-in-control" else "") / "paused"
            wait_for_file(paused, job)
            requeue(job)
        for job, run_dir in jobs.values():
            info = wait_for(job)
            assert_completed(info, restarts=1)
            log = log_of(info)
            assert "restart 1" in log and "stopped by SIGTERM after generator step" in log, log
            # the job's status is the pair's (a control that was stopped had one of its own)
            assert json.loads((run_dir / "run_info.json").read_text())["status"] == "completed"
            control = json.loads((run_dir / "control" / "run_info.json").read_text())
            assert control.get("status", "completed") == "completed", control
    finally:
        cancel(*(job for job, _ in jobs.values()))

    gan, control = jobs["cut-in-gan"][1], jobs["cut-in-control"][1]
    assert_same_branch(gan, control, range(STEPS))  # resumed inside the GAN branch
    assert_same_branch(control / "control", gan / "control", range(GAN_START, STEPS))
    assert column(read_metrics(gan / "control"), metric.TRAIN_D_LOSS) == {}  # no GAN in control
