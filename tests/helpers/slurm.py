"""A real SLURM scheduler from the tests: is one up, submit, watch, requeue, release.

``make test-slurm`` starts a one-node cluster (``scripts/slurm/local_cluster.sh``) and exports
its ``SLURM_CONF``; these functions only call the client commands (``sinfo``, ``sbatch``,
``scontrol``), so they work against any cluster the environment points at.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "vaegan-train"
SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"
# One CPU per task and a little memory: sbatch refuses a job that asks for more than a node
# has, and the defaults (train.sbatch, conf/hydra/launcher/slurm.yaml) are GPU-node sized.
CPU_JOB = ("--cpus-per-task=1", "--mem=2G", "--gres=none")
# Set by `make test-slurm`: a missing cluster fails the tests instead of skipping them.
REQUIRE = "VAEGAN_REQUIRE_SLURM"
# How long a test waits for one job (or a sweep): minutes on 2 idle cores; a machine whose
# cores are busy with other work (the cluster runs at its daemons' niceness) needs more.
TIMEOUT_S = float(os.environ.get("VAEGAN_SLURM_TIMEOUT_S", 600))
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED"}


@functools.cache
def unavailable() -> str | None:
    """Why no SLURM cluster can take jobs here (None: one can)."""
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: sinfo not installed (make test-slurm starts a local one)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=15)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: sinfo timed out (make test-slurm starts a local one)"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        reason = (out.stderr.strip().splitlines() or [f"node states {states}"])[-1]
        reason = reason.removeprefix("sinfo: ")
        return f"no SLURM cluster: sinfo: {reason} (make test-slurm starts a local one)"
    return None


def job_env(**extra: str) -> dict[str, str]:
    """The submitting environment: the repository importable (the test probes), wandb off."""
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", **extra}


def sbatch(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``sbatch --parsable ARGS`` from ``cwd``; the job id."""
    proc = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env or job_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (JobState, Reason, Restarts, ExitCode, StdOut, ...)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def release(job_id: str) -> None:
    """Let a requeued job start now: SLURM holds one for 120 s (Reason=BeginTime)."""
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True,
                   capture_output=True, timeout=30)


def wait_for(job_id: str, timeout_s: float = TIMEOUT_S, until=lambda info: False
             ) -> dict[str, str]:
    """Poll ``job_id`` until ``until(info)`` or it has ended; a requeued job is released
    at once. Its last ``job_info``."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = job_info(job_id)
        if until(info) or info["JobState"] in ENDED:
            return info
        if info["JobState"] == "PENDING" and info.get("Reason") == "BeginTime":
            release(job_id)
        assert time.monotonic() < deadline, f"job {job_id} after {timeout_s} s: {info}"
        time.sleep(1)


def wait_for_file(path: Path, job_id: str, timeout_s: float = TIMEOUT_S) -> None:
    """Wait until ``path`` exists (written by the running job ``job_id``)."""
    info = wait_for(job_id, timeout_s, until=lambda _: path.exists())
    assert path.exists(), f"{path} never appeared; job {job_id}: {info}"


def requeue(job_id: str) -> None:
    """What a pre-emption does: ``scontrol requeue`` (SIGTERM to the job, back to the queue)."""
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, timeout=30)


def cancel(*job_ids: str) -> None:
    """scancel: a test that failed leaves no job behind (a paused one would wait for hours)."""
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)


def seconds(duration: str) -> int:
    """SLURM's [D-]HH:MM:SS (or MM:SS) as seconds."""
    days, _, clock = duration.rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = 60 * total + int(part)
    return total + 86400 * int(days or 0)


def set_time_limit(job_id: str, minutes: int) -> None:
    subprocess.run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={minutes}"],
                   check=True, capture_output=True, timeout=30)


def bring_time_limit_near(job_id: str, seconds_left: int) -> None:
    """Move a running job's time limit to ``seconds_left`` s from now (up to a minute more),
    so that SLURM's pre-timeout signal (``--signal=SIG@<seconds_left - 30>``) comes at its next
    time-limit check, not in hours, and the limit itself still lies ahead."""
    run_s = seconds(job_info(job_id)["RunTime"])
    set_time_limit(job_id, -(-(run_s + seconds_left) // 60))  # whole minutes, rounded up


def assert_completed(info: dict[str, str], restarts: int | None = None) -> None:
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), info
    if restarts is not None:
        assert int(info["Restarts"]) == restarts, info


def log_of(info: dict[str, str]) -> str:
    """The job's SLURM output file (its StdOut path)."""
    return Path(info["StdOut"]).read_text()
