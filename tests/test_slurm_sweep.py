"""A Hydra multirun through hydra-submitit-launcher on a real SLURM scheduler.

The command is the one docs/cluster.md gives (`hydra/launcher=slurm`), sized for a CPU node:
four sweep jobs become four tasks of one SLURM array, run, and the sweep summary reads all of
them back. Skipped without a cluster (`make test-slurm` starts one).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.helpers.metrics import column, read_metrics
from tests.helpers.slurm import EXE, TIMEOUT_S, assert_completed, job_env, wait_for
from vaegan.vocab import metric_names as metric

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SWEPT = {(1e-6, 2), (1e-6, 4), (1e-4, 2), (1e-4, 4)}
STEPS = 8


def test_sweep_runs_each_job_as_a_slurm_job_and_summarises_them(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            str(EXE), "-m", "hydra/launcher=slurm", "beta=1e-6,1e-4", "gan_start=2,4",
            f"steps={STEPS}", "debug=tiny", "loss.objective.perceptual_weight=0",
            "~callbacks.images", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=60", f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=2 * TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    # submitit's folder per job: SWEEP_DIR/.submitit/<array id>_<job number>/
    folders = sorted(p for p in (sweep / ".submitit").iterdir()
                     if p.is_dir() and re.fullmatch(r"\d+_\d+", p.name))
    array_ids = {p.name.split("_")[0] for p in folders}
    assert len(array_ids) == 1 and [p.name.split("_")[1] for p in folders] == list("0123")
    swept = set()
    for folder in folders:
        job_id = folder.name  # a SLURM array task: <array id>_<task id>
        assert_completed(wait_for(job_id))  # its result is written just before it ends
        run_dir = sweep / job_id.split("_")[1]
        # SLURM's stdout of the job: what vaegan-train printed, naming its run dir
        assert f"run dir: {run_dir}\n" in (folder / f"{job_id}_0_log.out").read_text()
        assert (folder / f"{job_id}_0_log.err").is_file()
        info = json.loads((run_dir / "run_info.json").read_text())
        assert info["status"] == "completed", info
        swept.add((info["beta"], info["gan_start"]))
        rows = read_metrics(run_dir)
        assert sorted(column(rows, metric.TRAIN_LOSS)) == list(range(STEPS))
        assert min(column(rows, metric.TRAIN_D_LOSS)) == info["gan_start"]  # its own gan_start
    assert swept == SWEPT

    summary = (sweep / "summary.md").read_text()
    assert "4 jobs, 0 failed" in summary, summary
    table = [[c.strip() for c in line.split("|")[1:-1]] for line in summary.splitlines()
             if line.startswith("| ")]
    header, jobs = table[0], table[1:]
    assert [j[0] for j in jobs] == list("0123")
    assert {(float(j[header.index("beta")]), int(j[header.index("gan_start")])) for j in jobs} \
        == SWEPT
    assert {j[header.index("status")] for j in jobs} == {"completed"}
    assert {j[header.index("gen_step")] for j in jobs} == {str(STEPS)}
