"""vaegan's real path, ``Trainer.fit`` with the configured callbacks and loggers, per batch.

Every vaegan figure of the bench comes from here: ``VAEGAN.training_step`` (or the bench-only
``LDMReference``, built from the same modules) driven by the real ``Trainer``.
"""

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
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader

from vaegan.bench.players import synthetic_batch
from vaegan.bench.reference import BUILDERS
from vaegan.bench.timing import now
from vaegan.core.module import VAEGAN
from vaegan.train import build_trainer

Prepare = Callable[[VAEGAN], None]


class SyntheticData(L.LightningDataModule):
    """The same fixed batch in [-1, 1] of the configured shape, ``length`` times: timings of
    compute only (the loader's share is row 6), identical for every variant."""

    def __init__(self, cfg: DictConfig, length: int = 1_000_000) -> None:
        super().__init__()
        self.batch = synthetic_batch(cfg, torch.device("cpu"))
        self.length = length

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Repeat(self.batch, self.length), batch_size=None)


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, item: torch.Tensor, length: int) -> None:
        self.item, self.length = item, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.item


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
    cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path, clock: BatchClock,
    design: str = "vaegan", prepare: Prepare | None = None,
) -> VAEGAN:
    """Train ``clock.total`` generator steps through ``Trainer.fit``, as ``vaegan-train`` does;
    ``design`` picks the step (``reference.BUILDERS``), ``prepare`` changes the fresh module
    before training (a speed flag, ``model_changes``)."""
    with open_dict(cfg):
        cfg.steps = clock.total
        cfg.paths.output_dir = str(run_dir)
    module = BUILDERS[design](cfg)
    if prepare is not None:
        prepare(module)
    with quiet():
        trainer = build_trainer(cfg, run_dir)
        trainer.callbacks.append(clock)
        trainer.fit(module, datamodule=datamodule)
    return module


class FitBench:
    """A fresh ``Trainer.fit`` per call (fit cannot pause); returns seconds per batch."""

    def __init__(
        self, cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path,
        warmup: int, steps: int, design: str = "vaegan", prepare: Prepare | None = None,
    ) -> None:
        if warmup < 1:
            raise ValueError("the Trainer.fit timer needs at least one warm-up batch")
        self.cfg, self.datamodule, self.run_dir = cfg, datamodule, run_dir
        self.warmup, self.steps = warmup, steps
        self.design, self.prepare = design, prepare
        self.calls = 0

    def __call__(self) -> float:
        clock = BatchClock(self.warmup, self.warmup + self.steps)
        self.calls += 1
        fit(copy.deepcopy(self.cfg), self.datamodule, self.run_dir / f"fit{self.calls}", clock,
            self.design, self.prepare)
        return clock.per_batch()
