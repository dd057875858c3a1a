"""``vaegan-train``: compose → validate → instantiate → fit → diagnose.

Hydra main on ``conf/train.yaml``; ``-m`` runs multirun sweeps, one run dir per job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

from vaegan.app.checkpoint_io import AtomicCheckpointIO, check_resumable
from vaegan.app.config import validate
from vaegan.app.control import CONTROL, ForkCheckpoint, fork_id, fork_path, run_pair
from vaegan.app.errors import config_errors, one_line_errors
from vaegan.app.rundir import claim, ensure_space, ensure_writable, run_dir_lock
from vaegan.app.sweep import record_job
from vaegan.cluster.requeue import exit_if_stopped, stopped_by
from vaegan.cluster.slurm import gpus_per_node  # noqa: F401  the launcher's resolver
from vaegan.core.module import VAEGAN
from vaegan.core.schedules import BetaSchedule, GanSchedule
from vaegan.data.health import skipped_images
from vaegan.loggers.resumable_csv import ResumableCSVLogger
from vaegan.loggers.wandb import finish_wandb, log_run_config
from vaegan.vocab.layout import CSV_DIR, RunLayout
from vaegan.vocab.metric_names import VAL_REC
from vaegan.vocab.redact import redact_argv, redact_config, redact_overrides

log = logging.getLogger("vaegan")


def build_module(cfg: DictConfig) -> VAEGAN:
    """The LightningModule: one instantiate of the ``module`` node (conf/module/vaegan.yaml),
    whose parts are the ``model``, ``loss``, ``schedule``, ``optim`` and ``faults`` sections."""
    return instantiate(cfg.module, _convert_="all")


def build_schedules(cfg: DictConfig) -> tuple[BetaSchedule, GanSchedule]:
    """The module's β and GAN schedules alone (the study states its regime from them)."""
    return instantiate(cfg.module.beta_schedule), instantiate(cfg.module.gan_schedule)


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """CSV always (every run dir has csv/metrics.csv), plus the `logger` group's entries."""
    # appends on resume in the same run dir (a requeued job), where CSVLogger would start over
    loggers: list[Logger] = [ResumableCSVLogger(save_dir=str(run_dir), name=CSV_DIR, version="")]
    for conf in (cfg.get("logger") or {}).values():
        if conf is not None and "_target_" in conf:
            logger = instantiate(conf, _convert_="all")
            if logger is not None:  # None: a factory that gave up (wandb unreachable)
                loggers.append(logger)
    log_run_config(loggers, redact_config(cfg))
    return loggers


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[L.Callback]:
    """The `callbacks` group, plus the fork checkpoint of a ``gan_control`` GAN branch."""
    callbacks = [
        instantiate(conf, _convert_="all")
        for conf in (cfg.get("callbacks") or {}).values()
        if conf is not None and "_target_" in conf
    ]
    if cfg.get("gan_control"):
        callbacks.append(ForkCheckpoint(fork_path(run_dir), int(cfg.gan_start)))
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    plugins = instantiate(cfg.trainer.get("plugins") or [], _convert_="all")
    return instantiate(
        cfg.trainer,
        default_root_dir=str(run_dir),
        logger=build_loggers(cfg, run_dir),
        callbacks=build_callbacks(cfg, run_dir),
        # checkpoints written atomically (temp file, fsync, rename) and loaded weights_only
        plugins=[*(p for p in plugins if p is not None), AtomicCheckpointIO()],
        _convert_="all",
    )


def write_run_info(cfg: DictConfig, run_dir: Path) -> None:
    """What analysis needs without re-composing the config (markers for plots, labels)."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra app (tests calling run() directly)
        overrides = []
    info = {
        "gan_start": int(cfg.gan_start) if cfg.loss.get("gan", True) else None,
        "beta": float(cfg.beta),
        "schedule": str(cfg.schedule.kind),
        "steps": int(cfg.steps),
        "rec_reduction": str(cfg.loss.objective.rec_reduction),
        "overrides": redact_overrides(overrides),
    }
    if cfg.get("branch"):  # one branch of a gan_control pair (vaegan/app/control.py)
        info["branch"] = str(cfg.branch)
        info["fork_step"] = int(cfg.gan_start)
        pair_root = run_dir.parent if cfg.branch == CONTROL else run_dir
        if (fork := fork_id(pair_root)) is not None:  # the control's fork, the GAN's on resume
            info["fork_id"] = fork
    RunLayout(run_dir).run_info.write_text(json.dumps(info, indent=2))


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Train one run (with ``gan_control``: the pair); returns the final callback metrics
    (floats), the generator steps done and the run dir (plus ``control``: the same for the
    no-GAN branch)."""
    validate(cfg)
    run_dir = Path(run_dir or cfg.paths.output_dir)
    with run_dir_lock(run_dir):  # one run per dir, held for the whole job (both branches)
        if cfg.get("gan_control") and cfg.get("branch") is None:
            return run_pair(cfg, run_dir, fit_run)
        return fit_run(cfg, run_dir)


def fit_run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one plain run (or one branch of a pair) in ``run_dir``."""
    ensure_writable(run_dir)
    run_dir, ckpt_path, finished = claim(cfg, run_dir)  # finished? another run's dir?
    if finished:  # steps reached: nothing to train, nothing touched
        return {"run_dir": str(run_dir), "metrics": {}, "gen_step": int(cfg.steps),
                "finished": True}
    if cfg.get("threads"):  # before anything runs; DDP sets its own per process
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    with config_errors():  # a constructor's ValueError -> one-line ConfigError
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.setup("fit")  # reads and checks the data now, before a logger or trainer
        module = build_module(cfg)  # after the data: both draw from the seeded RNG
    ensure_space(run_dir, module)
    if ckpt_path:
        check_resumable(ckpt_path, module)
    trainer = build_trainer(cfg, run_dir)
    write_run_info(cfg, run_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return {
        "run_dir": str(run_dir), "metrics": metrics, "gen_step": module.gen_step,
        "skipped_images": skipped_images(datamodule),
        "stopped_by": stopped_by(trainer),  # a signal (SIGTERM, SIGUSR1): unfinished
    }


def diagnose_run(run_dir: Path) -> None:
    """Write diagnosis.md and plots next to the metrics and print the verdict."""
    from vaegan.analysis.report import write_report

    diagnosis = write_report(run_dir)
    print(f"KL diagnosis: {diagnosis.verdict}" + (f" ({', '.join(diagnosis.flags)})"
                                                   if diagnosis.flags else ""))
    if diagnosis.gan_headline:
        print(diagnosis.gan_headline)
    print(f"  report: {RunLayout(run_dir).diagnosis}")
    print(f"  plots:  {RunLayout(run_dir).plots}")


# An absolute path: Hydra would resolve a relative one as a Python package ("conf").
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")  # links to conf/ in a checkout


def compose_train_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides`` outside a Hydra app (tests, bench,
    study), with the Hydra config registered so ``run()`` sees the overrides and run dir."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*overrides, f"hydra.run.dir={run_dir}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@one_line_errors  # single run: `error: <message>`, exit 2 (bad input) or 3 (diverged)
@record_job  # run_info.json status; in a multirun a failing job is recorded, not fatal
def main(cfg: DictConfig) -> float | None:
    redact_argv()  # wandb records the command line; overrides may carry tokens
    try:
        result = run(cfg)
    finally:  # one wandb run per Hydra job, also when the job fails
        finish_wandb()
    exit_if_stopped(result)  # checkpointed, unfinished: 128 + signal, no diagnosis
    if result.get("finished"):  # said so; exit 0
        return None
    run_dir = Path(result["run_dir"])
    layout = RunLayout(run_dir)
    print(f"run dir: {run_dir}")
    print(f"  metrics:    {layout.metrics_csv}")
    print(f"  checkpoint: {layout.last_ckpt}")
    print(f"  images:     {layout.images}")
    if "control" in result:
        control = result["control"]["run_dir"]
        print(f"  no-GAN control (forked at gan_start={cfg.gan_start}): {control}")
    if cfg.get("diagnose", True) and L.fabric.utilities.rank_zero.rank_zero_only.rank == 0:
        diagnose_run(run_dir)
    # The objective a sweeper (Optuna) minimises: final validation reconstruction error.
    return result["metrics"].get(VAL_REC)


if __name__ == "__main__":
    main()
