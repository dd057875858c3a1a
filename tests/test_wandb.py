"""wandb, offline: a real sweep through the console script, read back from the ``.wandb`` files
wandb writes (no server), and the fallbacks that keep a wandb failure from ending training."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.loggers import WandbLogger

from tests.helpers.metrics import CONTRACT_TRAIN, CONTRACT_VAL
from tests.helpers.offline_wandb import offline_run
from tests.helpers.run import compose_config
from vaegan.loggers import once
from vaegan.loggers.wandb import SafeWandbLogger, finish_wandb, make_wandb_logger
from vaegan.train import build_loggers
from vaegan.vocab import metric_names as metric

CONTRACT_LATENT = [metric.LATENT_MU_MEAN, metric.LATENT_MU_STD, metric.LATENT_LOGVAR_MEAN,
                   metric.LATENT_LOGVAR_MIN, metric.LATENT_LOGVAR_MAX, metric.LATENT_VAR_MEAN,
                   metric.LATENT_CLAMP_FRAC, metric.LATENT_ACTIVE_UNITS]
CONTRACT_GRAD = [metric.grad(t, p) for t in metric.GRAD_TERMS
                 for p in (metric.ENCODER, metric.DECODER)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """``vaegan-train -m beta=1e-4,1e-3 logger=wandb``: two jobs in one process, offline."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "kl_sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DIR": str(sweep_dir.parent)}
    exe = Path(sys.executable).parent / "vaegan-train"
    proc = subprocess.run(
        [str(exe), "-m", "debug=tiny", "logger=wandb", "beta=1e-4,1e-3", "steps=6",
         "gan_start=3", f"hydra.sweep.dir={sweep_dir}"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep_dir


@pytest.mark.slow
def test_sweep_jobs_are_named_runs_in_one_group_with_config_and_contract_metrics(sweep):
    runs = [offline_run(sweep / str(job)) for job in (0, 1)]
    assert [r["run"].display_name for r in runs] == ["beta=0.0001", "beta=0.001"]  # as Hydra
    assert {r["run"].run_group for r in runs} == {f"{sweep.parent.name}-{sweep.name}"}
    assert [r["config"]["beta"] for r in runs] == [1e-4, 1e-3]
    assert all(r["config"]["gan_start"] == 3 for r in runs)
    assert runs[0]["config"]["loss"]["objective"]["rec_reduction"] == "mean"
    for r in runs:
        missing = [n for n in CONTRACT_TRAIN + CONTRACT_VAL + CONTRACT_LATENT + CONTRACT_GRAD
                   + ["gen_step"] if n not in r["history"]]
        assert not missing, missing
        assert r["globs"][-1] == ("*", "gen_step")  # every curve on the generator-step axis
        assert r["types"][metric.LATENT_MU] == "histogram"
        assert r["types"]["images/inputs_recs_prior"] == "image-file"
        assert r["exit"]


def test_unreachable_server_falls_back_to_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"wandb init \(online\) failed.*retrying offline"):
        logger = make_wandb_logger(mode="online", save_dir=str(tmp_path), init_timeout=5)
    try:
        assert isinstance(logger, SafeWandbLogger)
        assert logger.experiment.settings.mode == "offline"
        logger.log_metrics({metric.TRAIN_KL: 1.0, "gen_step": 0.0})
    finally:
        finish_wandb()


def test_wandb_that_cannot_start_at_all_is_dropped_and_logging_errors_only_warn(
    tmp_path, monkeypatch
):
    import wandb

    def broken_init(**kwargs):
        raise RuntimeError("wandb is broken")

    monkeypatch.setattr(wandb, "init", broken_init)
    with pytest.warns(RuntimeWarning, match="training without wandb"):
        loggers = build_loggers(compose_config(tmp_path, "logger=wandb"), tmp_path)
    assert len(loggers) == 1 and not isinstance(loggers[0], WandbLogger)  # the CSV logger

    class Broken:
        def log(self, *args, **kwargs):
            raise OSError("disk full")

    once._warned.discard("wandb-log_metrics")
    logger = SafeWandbLogger(save_dir=str(tmp_path))
    logger._experiment = Broken()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.log_metrics({metric.TRAIN_KL: 1.0})
        logger.log_metrics({metric.TRAIN_KL: 2.0})
    assert len([w for w in caught if "disk full" in str(w.message)]) == 1
