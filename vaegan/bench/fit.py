"""vaegan's real path, ``Trainer.fit`` with the configured callbacks and loggers, per batch."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, open_dict

from vaegan.bench.timing import now
from vaegan.train import build_module, build_trainer


class BatchClock(L.Callback):
    """Stamps the end of every training batch; calls ``on_warm`` after the warm-up batches
    and ``on_done`` after the last one (memory probes hook in there)."""

    def __init__(
        self,
        warmup: int,
        total: int,
        on_warm: Callable[[], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.warmup, self.total = warmup, total
        self.on_warm, self.on_done = on_warm, on_done
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.stamps.append(now())
        hook = {self.warmup: self.on_warm, self.total: self.on_done}.get(len(self.stamps))
        if hook is not None:
            hook()

    def per_batch(self) -> float:
        """Seconds per batch after the warm-up (end of batch ``warmup`` to end of the last)."""
        timed = self.stamps[self.warmup - 1 :]
        return (timed[-1] - timed[0]) / (len(timed) - 1)


def quiet() -> contextlib.ExitStack:
    """No progress bar, banners or warnings on the bench's output (they still run)."""
    stack = contextlib.ExitStack()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    devnull = stack.enter_context(open(os.devnull, "w"))
    stack.enter_context(contextlib.redirect_stderr(devnull))
    stack.enter_context(contextlib.redirect_stdout(devnull))
    return stack


def fit(
    cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path, clock: BatchClock
) -> None:
    """Train ``clock.total`` generator steps through ``Trainer.fit``, as ``vaegan-train`` does."""
    with open_dict(cfg):
        cfg.steps = clock.total
        cfg.paths.output_dir = str(run_dir)
    module = build_module(cfg)
    with quiet():
        trainer = build_trainer(cfg, run_dir)
        trainer.callbacks.append(clock)
        trainer.fit(module, datamodule=datamodule)


class FitBench:
    """A fresh ``Trainer.fit`` per call (fit cannot pause); returns seconds per batch."""

    def __init__(
        self, cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path,
        warmup: int, steps: int,
    ) -> None:
        if warmup < 1:
            raise ValueError("the Trainer.fit timer needs at least one warm-up batch")
        self.cfg, self.datamodule, self.run_dir = cfg, datamodule, run_dir
        self.warmup, self.steps = warmup, steps
        self.calls = 0

    def __call__(self) -> float:
        clock = BatchClock(self.warmup, self.warmup + self.steps)
        self.calls += 1
        fit(copy.deepcopy(self.cfg), self.datamodule, self.run_dir / f"fit{self.calls}", clock)
        return clock.per_batch()
