"""DDP with its ranks started by SLURM (two CPU tasks, gloo) on a real scheduler.

`sbatch scripts/slurm/train.sbatch` is submitted as docs/cluster.md writes it, with the options
a CPU node needs; `srun --ntasks-per-node=2 vaegan-train trainer=ddp_sim` starts the ranks
directly.
Either way Lightning reads its ranks from SLURM's environment and re-launches nothing, and the
run must be one DDP run: one run dir, rank 0's logs, both ranks at the same step with the same
weights. Skipped without a cluster (`make test-slurm` starts one).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.ddp import DIGEST, assert_one_ddp_run
from tests.helpers.slurm import (
    CPU_JOB,
    EXE,
    SBATCH,
    TIMEOUT_S,
    assert_completed,
    job_env,
    log_of,
    sbatch,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS = 5
TINY = ("debug=tiny", f"steps={STEPS}", "gan_start=2", "loss.objective.perceptual_weight=0",
        "~callbacks.images", DIGEST)


def test_sbatch_template_trains_one_ddp_run(tmp_path):
    # docs/cluster.md: sbatch [options] scripts/slurm/train.sbatch [overrides], here on one
    # CPU node: 2 tasks of 1 CPU, no GPUs; the run dir and log named by the job id.
    job = sbatch(tmp_path, "--ntasks-per-node=2", *CPU_JOB, "--time=60", str(SBATCH),
                 "trainer.accelerator=cpu", *TINY, env=job_env(VAEGAN_TRAIN=str(EXE)))
    info = wait_for(job)
    assert_completed(info, restarts=0)
    assert info["StdOut"] == str(tmp_path / f"slurm-vaegan-{job}.out")
    run_dir = f"outputs/slurm/vaegan-{job}"
    assert f"1 node(s) x 2 GPU(s), run dir {run_dir}, restart 0" in log_of(info)
    assert_one_ddp_run(tmp_path / run_dir, steps=STEPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs", info["StdOut"].split("/")[-1]]


def test_srun_starts_both_ranks_of_one_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        # --ntasks-per-node, not --ntasks: Lightning's SLURM environment refuses --ntasks
        ["srun", "--nodes=1", "--ntasks-per-node=2", *CPU_JOB, "--time=60",
         "--kill-on-bad-exit=1", str(EXE), "trainer=ddp_sim", *TINY, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # Lightning took both ranks from srun: it re-launched nothing (rank 1 would log to
    # train_ddp_process_1.log) and each task trained as its SLURM rank.
    assert "train_ddp_process_1.log" not in {p.name for p in run_dir.iterdir()}
    assert f"run dir: {run_dir}\n" in proc.stdout
    assert_one_ddp_run(run_dir, steps=STEPS, rank1_log="train.log")
