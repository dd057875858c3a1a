"""Sweeps: a failing job is reported, not fatal; launcher configs; the SLURM sbatch template."""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import submitit
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.run import compose_config
from vaegan.vocab import metric_names as metric

REPO = Path(__file__).resolve().parent.parent
SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"


@pytest.mark.slow
def test_failing_job_does_not_stop_the_sweep_and_is_reported(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "vaegan-train"), "-m", "debug=tiny", "steps=2",
            "loss.objective.perceptual_weight=0", "beta=-1,1e-3", f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # reported through the exit code ...
    assert (sweep / "1" / "csv" / "metrics.csv").is_file()  # ... after the next job ran
    assert "beta=-1" in (sweep / "0" / "FAILED").read_text()
    assert '"status": "failed"' in (sweep / "0" / "run_info.json").read_text()
    assert '"status": "completed"' in (sweep / "1" / "run_info.json").read_text()
    assert "job failed: ConfigError: beta=-1" in proc.stdout + proc.stderr
    summary = (sweep / "summary.md").read_text()
    assert "1 failed" in summary and summary in proc.stdout
    rows = [line.split("|")[1:-1] for line in summary.splitlines() if line.startswith("| ")]
    header, jobs = [c.strip() for c in rows[0]], [[c.strip() for c in r] for r in rows[1:]]
    assert header[:3] == ["job", "beta", "status"]  # the swept value is a column
    assert [j[:3] for j in jobs] == [["0", "-1", "failed"], ["1", "0.001", "completed"]]
    assert jobs[1][header.index("gen_step")] == "2"
    assert jobs[1][header.index(f"final {metric.VAL_REC}")] != "n/a"


def test_slurm_launcher_renders_the_sbatch_the_config_asks_for(tmp_path, monkeypatch):
    """The real hydra-submitit launcher, up to the point where it would call sbatch."""
    cfg = compose_config(
        tmp_path, "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
        "trainer.num_nodes=2", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj",
        "hydra.launcher.timeout_min=90", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    captured = {}

    class Job:
        def results(self) -> list[JobReturn]:
            return [JobReturn(status=JobStatus.COMPLETED)]

    def map_array(executor, fn, *args):
        captured["sbatch"] = executor._executor._make_submission_file_text("CMD", "UID")
        return [Job()]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    launcher.launch([["beta=1e-4"]], initial_job_idx=0)
    sbatch = captured["sbatch"]
    for line in (
        "--partition=gpu", "--account=proj", "--nodes=2", "--gpus-per-node=4",
        "--ntasks-per-node=4", "--cpus-per-task=8", "--mem=64GB", "--time=90",
        "--signal=USR2@120",
    ):
        assert f"#SBATCH {line}\n" in sbatch, (line, sbatch)


@pytest.mark.parametrize(
    ("trainer", "gpus"),
    [(("trainer=cpu",), 0), (("trainer=ddp_sim",), 0), (("trainer=ddp", "trainer.devices=4"), 4)],
)
def test_slurm_launcher_asks_for_gpus_only_when_training_on_them(tmp_path, trainer, gpus):
    """On CPU trainer.devices counts processes: asking SLURM for that many GPUs made sbatch
    refuse every job on a node without GPUs ("Invalid generic resource specification")."""
    launcher = compose_config(tmp_path, "hydra/launcher=slurm", *trainer).hydra.launcher
    assert launcher.gpus_per_node == gpus
    assert launcher.tasks_per_node == compose_config(tmp_path, *trainer).trainer.devices


def test_local_launcher_composes():
    cfg = compose_config(Path("unused"), "hydra/launcher=local")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("submitit_launcher.LocalLauncher")
    assert launcher["timeout_min"] == 600 and launcher["gpus_per_node"] == 0


@pytest.mark.slow
def test_optuna_sweep_minimises_the_final_val_rec(tmp_path):
    """The real hydra-optuna-sweeper (a test extra): each trial's objective is what
    vaegan-train returns, the run's final val/rec, and the best trial is the lowest one."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "vaegan-train"), "-m",
            "hydra/sweeper=vaegan_optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1",
            "debug=tiny", "steps=4", "gan_start=choice(0,2)", f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final_rec = {}
    for job in ("0", "1"):
        overrides = OmegaConf.load(sweep / job / ".hydra" / "overrides.yaml")
        params = dict(o.split("=", 1) for o in overrides)
        assert params["gan_start"] in ("0", "2") and 1e-7 <= float(params["beta"]) <= 1e-2
        with open(sweep / job / "csv" / "metrics.csv") as f:
            recs = [r[metric.VAL_REC] for r in csv.DictReader(f) if r.get(metric.VAL_REC)]
        final_rec[(float(params["beta"]), int(params["gan_start"]))] = float(recs[-1])
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    best = (float(results.best_params.beta), int(results.best_params.gan_start))
    assert final_rec[best] == pytest.approx(min(final_rec.values()))
    assert float(results.best_value) == pytest.approx(final_rec[best])


def dry_run(*overrides: str) -> list[str]:
    env = {
        **os.environ, "VAEGAN_DRY_RUN": "1", "SLURM_JOB_ID": "777", "SLURM_JOB_NAME": "kl",
        "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "4(x2)",
    }
    out = subprocess.run(
        ["bash", str(SBATCH), *overrides], env=env, capture_output=True, text=True, check=True
    )
    return shlex.split(out.stdout)


def test_sbatch_template_is_valid_bash_and_its_command_composes(tmp_path):
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    text = SBATCH.read_text()
    assert "#SBATCH --signal=USR1@" in text and "#SBATCH --requeue" in text
    command = dry_run("beta=1e-6", "gan_start=5000")
    assert command[0].endswith("vaegan-train")
    overrides = command[1:]
    assert "hydra.run.dir=outputs/slurm/kl-777" in overrides  # the requeued job's dir too
    cfg = compose_config(
        tmp_path, *(o for o in overrides if not o.startswith("hydra.run.dir=")), debug=None
    )
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (4, 2)
    assert cfg.trainer.strategy.find_unused_parameters is True
    assert cfg.ckpt_path == "last" and (cfg.beta, cfg.gan_start) == (1e-6, 5000)
    assert cfg.callbacks.requeue.signals == ["SIGUSR1", "SIGTERM", "SIGINT"]
    assert cfg.callbacks.requeue.requeue_on == ["SIGUSR1"]  # scancel sends SIGTERM too
