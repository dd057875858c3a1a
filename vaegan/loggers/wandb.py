"""A WandbLogger that can never kill a training run, with curves on the generator-step axis.

- ``group`` defaults to the Hydra multirun sweep and ``name`` to the overrides that vary in it,
  so a sweep ``beta=1e-6,1e-4 gan_start=0,2000`` shows up as one group of four named runs.
- Every metric uses ``gen_step`` as its x-axis (``define_metric``), not Lightning's global step,
  which counts both optimizers' steps.
- If ``wandb.init`` fails (no network, no API key, bad entity) the logger warns and retries
  offline; if that fails too, training goes on without wandb. Later logging errors warn once.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from vaegan.loggers.hydra_names import run_label, sweep_group
from vaegan.loggers.once import warn_once
from vaegan.vocab.metric_names import GEN_STEP


class SafeWandbLogger(WandbLogger):
    """WandbLogger whose logging calls turn errors into one warning each."""

    def _guarded(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as err:
            warn_once(f"wandb-{what}", f"wandb {what} failed, training continues: {err}")
            return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._guarded("log_metrics", super().log_metrics, metrics, step)

    def log_hyperparams(self, params: Any) -> None:
        self._guarded("log_hyperparams", super().log_hyperparams, params)

    def log_image(self, *args: Any, **kwargs: Any) -> None:
        self._guarded("log_image", super().log_image, *args, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guarded("checkpoint upload", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guarded("finalize", super().finalize, status)


def use_gen_step_axis(experiment: Any) -> None:
    """Plot every metric against ``gen_step``; rows without it reuse the last value."""
    experiment.define_metric(GEN_STEP)
    experiment.define_metric("*", step_metric=GEN_STEP, step_sync=True)


def make_wandb_logger(
    project: str = "vaegan",
    entity: str | None = None,
    save_dir: str = ".",
    tags: list[str] | None = None,
    mode: str | None = None,
    group: str | None = None,
    name: str | None = None,
    fallback_name: str | None = None,
    name_suffix: str = "",
    init_timeout: float = 60.0,
    **kwargs: Any,
) -> WandbLogger | None:
    """Start the wandb run now (so failures surface here, not mid-training); None if impossible.

    ``mode`` null means ``WANDB_MODE`` or online; ``group``/``name`` null mean the Hydra sweep and
    its varying overrides (``fallback_name`` when nothing varies); ``name_suffix`` marks a
    ``gan_control`` no-GAN branch, which shares the GAN branch's group.
    """
    import wandb

    mode = mode or os.environ.get("WANDB_MODE") or "online"
    name = name or run_label(fallback_name)
    init = dict(
        project=project, entity=entity, save_dir=save_dir, tags=list(tags or []),
        group=group or sweep_group(), name=None if name is None else name + name_suffix,
        **kwargs,
    )
    attempts = [mode] if mode in ("offline", "disabled", "dryrun") else [mode, "offline"]
    for i, attempt in enumerate(attempts):
        try:
            logger = SafeWandbLogger(
                mode=attempt, settings=wandb.Settings(init_timeout=init_timeout), **init
            )
            use_gen_step_axis(logger.experiment)
            return logger
        except Exception as err:
            finish_wandb()
            then = "retrying offline" if i + 1 < len(attempts) else "training without wandb"
            warnings.warn(f"wandb init ({attempt}) failed: {err}; {then}", RuntimeWarning,
                          stacklevel=2)
    return None


def config_dict(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data, resolved if possible, without Hydra's own node."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        return OmegaConf.to_container(job, resolve=True)  # type: ignore[return-value]
    except Exception:  # an interpolation that needs a Hydra runtime: keep it as written
        return OmegaConf.to_container(job, resolve=False)  # type: ignore[return-value]


def log_run_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """The resolved run config as the wandb run config (group and filter runs by ``beta``,
    ``gan_start``, ``loss.objective.rec_reduction``, ...)."""
    targets = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if targets:
        params = config_dict(cfg)
        for logger in targets:
            logger.log_hyperparams(params)


def finish_wandb() -> None:
    """End the active wandb run, if any (end of every Hydra job, so sweeps get one run each)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.finish()
    except Exception as err:
        warn_once("wandb-finish", f"wandb.finish failed: {err}")
