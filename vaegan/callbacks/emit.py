"""Write callback measurements to every active logger, on the generator-step clock.

Callbacks write rows straight to the loggers instead of through ``LightningModule.log``: a value
logged with ``self.log`` on a step Lightning does not write stays cached and is written again,
stale, on every later logging step. A direct row carries its own ``gen_step``, so CSV,
TensorBoard and wandb all put it at the right x, whatever ``log_every_n_steps`` is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from vaegan.data.batch import batch_images
from vaegan.loggers.once import warn_once
from vaegan.vocab.metric_names import GEN_STEP


def to_floats(metrics: Mapping[str, Tensor | float]) -> dict[str, float]:
    """All values as floats with a single host sync for the tensors among them."""
    names = [k for k, v in metrics.items() if isinstance(v, Tensor)]
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, Tensor)}
    if names:
        device = metrics[names[0]].device
        stacked = torch.stack([metrics[k].detach().float().reshape(()).to(device) for k in names])
        out.update(zip(names, stacked.cpu().tolist(), strict=True))
    return out


def _wandb_log(logger: WandbLogger, row: dict[str, Any]) -> None:
    try:
        logger.experiment.log(row)
    except Exception as err:  # a dashboard problem must not end a training run
        warn_once("wandb-log", f"wandb logging failed, continuing without it: {err}")


@rank_zero_only
def log_scalars(
    trainer: L.Trainer, metrics: Mapping[str, Tensor | float], gen_step: int
) -> dict[str, float]:
    """One row ``metrics`` + ``gen_step`` to every logger; returns the floats written."""
    row = to_floats(metrics)
    row[GEN_STEP] = float(gen_step)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=gen_step)
    return row


@rank_zero_only
def log_histograms(trainer: L.Trainer, tensors: Mapping[str, Tensor], gen_step: int) -> None:
    """Value histograms to TensorBoard (``add_histogram``) and wandb (``wandb.Histogram``)."""
    values = {k: v.detach().float().flatten().cpu() for k, v in tensors.items()}
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            row: dict[str, Any] = {k: wandb.Histogram(v.numpy()) for k, v in values.items()}
            _wandb_log(logger, {**row, GEN_STEP: gen_step})
        elif hasattr(getattr(logger, "experiment", None), "add_histogram"):
            for name, v in values.items():
                logger.experiment.add_histogram(name, v, gen_step)


@rank_zero_only
def log_image(trainer: L.Trainer, key: str, grid: Tensor, gen_step: int, caption: str) -> None:
    """An image grid ([3, H, W] in [0, 1]) to TensorBoard and wandb; CSV takes no images."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            _wandb_log(logger, {key: wandb.Image(grid, caption=caption), GEN_STEP: gen_step})
        elif hasattr(getattr(logger, "experiment", None), "add_image"):
            logger.experiment.add_image(key, grid, gen_step)


def fixed_val_images(trainer: L.Trainer, n: int) -> Tensor:
    """The same ``n`` validation images every call (grids over time, active units)."""
    datamodule = trainer.datamodule
    if hasattr(datamodule, "val_batch"):
        return datamodule.val_batch(n)
    images: list[Tensor] = []
    for batch in datamodule.val_dataloader():
        images.append(batch_images(batch))
        if sum(len(b) for b in images) >= n:
            break
    return torch.cat(images)[:n]
