"""A WandbLogger that can never kill a training run."""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def make_wandb_logger(
    project: str = "vaegan",
    entity: str | None = None,
    save_dir: str = ".",
    tags: list[str] | None = None,
    mode: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """WandbLogger with the mode from config or ``WANDB_MODE`` (offline in tests)."""
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    return WandbLogger(
        project=project,
        entity=entity,
        save_dir=save_dir,
        tags=list(tags or []),
        mode=mode,
        **kwargs,
    )
