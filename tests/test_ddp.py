"""DDP with 2 CPU processes (``trainer=ddp_sim``, gloo) through the real console script.

Lightning's ``ddp`` re-launches the script for rank 1, so these run ``vaegan-train`` in a
subprocess (cwd = tmp_path: a stray ``outputs/`` or ``multirun/`` dir would show up there).
``tests.helpers.probes.WeightDigest`` makes each rank write the hash of its parameters at train
end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers.ddp import DIGEST, assert_one_ddp_run
from tests.helpers.faults import nan_injection
from tests.helpers.metrics import column, read_metrics
from tests.helpers.run import compose_config
from vaegan.cluster.ddp import JobObserver, child_command
from vaegan.vocab import metric_names as metric

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "vaegan-train"
DDP = (
    "debug=tiny",
    "trainer=ddp_sim",
    "gan_start=2",  # the discriminator trains from step 2: both players' unused parameters
    "loss.objective.perceptual_weight=0",  # speed; LPIPS has no trainable parameters
    DIGEST,
)


def vaegan_train(cwd: Path, *args: str, returncode: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # rank 1 imports tests.helpers.probes too
    proc = subprocess.run(
        [str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == returncode, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("checkpointing", ["none", "blocks"])  # recompute under DDP's hooks
@pytest.mark.slow
def test_ddp_run_keeps_ranks_identical_and_writes_one_run_dir(tmp_path, checkpointing):
    run_dir = tmp_path / "run"
    proc = vaegan_train(
        tmp_path, *DDP, "steps=5", f"model.activation_checkpointing={checkpointing}",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.stdout.count(f"run dir: {run_dir}") >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert_one_ddp_run(run_dir, steps=5)


@pytest.mark.slow
def test_ddp_multirun_gives_each_job_one_run_dir(tmp_path):
    sweep = tmp_path / "sweep"
    proc = vaegan_train(
        tmp_path, "-m", *DDP, "beta=1e-4,1e-2", "steps=3", f"hydra.sweep.dir={sweep}"
    )
    # rank 1 re-runs its job, not the sweep (Lightning's own re-launch repeats `-m ...`)
    launches = (proc.stdout + proc.stderr).count("Launching 2 jobs")
    assert launches == 1, f"the sweep was launched {launches} times"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"], jobs
    for job in jobs:
        assert_one_ddp_run(sweep / job, steps=3)
    summary = (sweep / "summary.md").read_text()
    assert summary.count("completed") == 2 and "0 failed" in summary, summary
    assert "sweep summary:" in proc.stdout


@pytest.mark.slow
def test_a_failing_ddp_job_is_reported_and_the_sweep_goes_on(tmp_path):
    # Job 0 stops on every rank (a NaN adversarial term twice in a row). Lightning's own child
    # observer outlived the job and SIGKILLed the sweep over rank 1's exit code.
    sweep = tmp_path / "sweep"
    proc = vaegan_train(
        tmp_path, "-m", *DDP, "steps=5", *nan_injection("g_adv", at_step=2, count=3),
        "faults.max_consecutive_nonfinite=2,100", f"hydra.sweep.dir={sweep}", returncode=1,
    )
    assert "NonFiniteLossError" in (sweep / "0" / "FAILED").read_text()
    assert_one_ddp_run(sweep / "1", steps=5)
    summary = (sweep / "summary.md").read_text()
    assert "1 failed" in summary and summary.count("completed") == 1, summary
    assert "sweep summary:" in proc.stdout


def test_job_observer_stops_with_its_job():
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed.wait()
    observer = JobObserver([failed], poll_s=0.01, grace_s=60)
    observer.start()
    time.sleep(0.2)  # it has seen the failure and waits for rank 0 to fail on its own
    assert observer.is_alive()
    observer.stop()
    observer.join(timeout=5)
    assert not observer.is_alive()  # and this process is still here


def test_child_command_reruns_this_job_as_a_single_run(tmp_path):
    """What rank 1 gets: this job's overrides, its run dir, none of the sweep's settings."""
    compose_config(
        tmp_path, "beta=0.01", "trainer=ddp_sim", "hydra/launcher=local", "hydra.job.chdir=false",
        "hydra.sweep.dir=/elsewhere", "hydra.mode=MULTIRUN",
    )
    run_dir = str(tmp_path / 'job "0", with spaces')
    argv, cwd = child_command(run_dir, local_rank=1)
    assert argv[:3] == [sys.executable, "-m", "vaegan.train"] and cwd == os.getcwd()
    parsed = OverridesParser.create().parse_overrides([a for a in argv[3:] if a[0] != "-"])
    values = {o.key_or_group: o.value() for o in parsed}
    assert not any(k.startswith(("hydra/launcher", "hydra.sweep", "hydra.mode")) for k in values)
    assert values["beta"] == 0.01 and values["trainer"] == "ddp_sim"
    assert values["hydra.job.chdir"] is False and values["debug"] == "tiny"
    assert values["hydra.run.dir"] == run_dir  # quoted so that Hydra reads it back verbatim
    assert values["hydra.output_subdir"] is None  # the parent alone writes .hydra/
    assert values["hydra.job.name"] == "train_ddp_process_1"


@pytest.mark.slow
def test_ddp_gan_control_trains_each_branch_on_both_ranks(tmp_path):
    run_dir = tmp_path / "run"
    vaegan_train(tmp_path, *DDP, "steps=5", "gan_control=true", f"hydra.run.dir={run_dir}")
    digests = {}
    for branch in (run_dir, run_dir / "control"):
        ranks = [p.read_text().split() for p in sorted(branch.glob("weights_rank*"))]
        assert len(ranks) == 2 and ranks[0][:2] == ranks[1][:2], ranks  # identical ranks
        assert ranks[0][0] == "5"
        assert (branch / "train_ddp_process_1.log").is_file()  # rank 1 trained *this* branch
        digests[branch.name] = ranks[0][1]
    assert digests["run"] != digests["control"]  # the GAN made a difference
    rows = read_metrics(run_dir / "control")
    assert sorted(int(float(r["gen_step"])) for r in rows if r.get(metric.TRAIN_LOSS)) == [2, 3, 4]
    assert not column(rows, metric.TRAIN_D_LOSS)
