"""vaegan's real path: ``build_module`` and ``Trainer.fit`` as ``vaegan-train`` runs them.

Every vaegan figure of the bench comes from here: ``VAEGAN.training_step`` (or the bench-only
``LDMReference``, the same module stepped as LDM steps) driven by the real ``Trainer`` that
``vaegan.train.build_trainer`` configures. What a measurement needs to see of a batch, it sees
through callbacks (``BatchClock``, the memory and FLOP probes), never by running the step itself.
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

from vaegan.bench.model_changes import apply_changes
from vaegan.bench.reference import LDMReference
from vaegan.bench.timing import now
from vaegan.core.module import VAEGAN
from vaegan.train import build_module, build_trainer

DESIGNS = ("vaegan", "reference")  # VAEGAN.training_step | LDMReference.training_step


def synthetic_batch(cfg: DictConfig, device: torch.device) -> torch.Tensor:
    """A fixed batch in [-1, 1] of the configured shape: compute-only timings need no loader."""
    generator = torch.Generator().manual_seed(0)
    size, batch = int(cfg.data.image_size), int(cfg.data.batch_size)
    return (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).to(device)


class SyntheticData(L.LightningDataModule):
    """The same fixed batch, ``length`` times: timings of compute only (the loader's share is
    row 6), identical for every variant."""

    def __init__(self, cfg: DictConfig, length: int = 1_000_000) -> None:
        super().__init__()
        self.batch = synthetic_batch(cfg, torch.device("cpu"))
        self.length = length

    def train_dataloader(self) -> DataLoader:
        return DataLoader([self.batch] * self.length, batch_size=None)


def build(cfg: DictConfig, design: str = "vaegan", changes: str | None = None) -> VAEGAN:
    """What ``vaegan-train`` builds from ``cfg`` (seeded), stepped as ``design`` steps, with the
    ``+``-joined ``model_changes.CHANGES`` applied."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r}; allowed: {', '.join(DESIGNS)}")
    torch.manual_seed(int(cfg.seed))
    module = build_module(cfg)
    if design == "reference":
        module.__class__ = LDMReference  # a subclass with no state of its own
    apply_changes(module, changes)
    return module


class BatchClock(L.Callback):
    """Stamps the end of every training batch and stops training after ``total`` of them; calls
    ``on_warm`` after the ``warmup`` batches and ``on_done`` after the last (the memory probe)."""

    def __init__(
        self,
        warmup: int,
        total: int | None,
        on_warm: Callable[[], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.warmup, self.total = warmup, total
        self.on_warm, self.on_done = on_warm, on_done
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.stamps.append(now())
        if len(self.stamps) == self.warmup and self.on_warm is not None:
            self.on_warm()
        if len(self.stamps) == self.total:
            trainer.should_stop = True
            if self.on_done is not None:
                self.on_done()

    def intervals(self) -> list[float]:
        """Seconds of each batch after the warm-up (end of the previous batch to its end)."""
        timed = self.stamps[max(self.warmup - 1, 0):]
        return [end - start for start, end in zip(timed, timed[1:], strict=False)]

    def per_batch(self) -> float:
        """Mean seconds per batch after the warm-up."""
        intervals = self.intervals()
        return sum(intervals) / len(intervals)


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
    cfg: DictConfig, module: VAEGAN, datamodule: L.LightningDataModule, run_dir: Path,
    *callbacks: L.Callback,
) -> L.Trainer:
    """``Trainer.fit`` of ``module`` as ``vaegan-train`` runs it (``build_trainer(cfg)``), with
    ``callbacks`` added; one of them stops it (``BatchClock``)."""
    with quiet():
        trainer = build_trainer(cfg, run_dir)
        trainer.callbacks.extend(callbacks)
        trainer.fit(module, datamodule=datamodule)
    return trainer


def with_steps(cfg: DictConfig, steps: int, run_dir: Path) -> DictConfig:
    """A copy of ``cfg`` that trains ``steps`` generator steps into ``run_dir``."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.steps = steps
        cfg.paths.output_dir = str(run_dir)
    return cfg


class FitBench:
    """One variant of a comparison: a fresh module and ``Trainer.fit`` per call (fit cannot
    pause); returns seconds per batch after the warm-up."""

    def __init__(
        self, cfg: DictConfig, datamodule: L.LightningDataModule, run_dir: Path,
        warmup: int, steps: int, design: str = "vaegan", changes: str | None = None,
    ) -> None:
        if warmup < 1:
            raise ValueError("the Trainer.fit timer needs at least one warm-up batch")
        self.cfg, self.datamodule, self.run_dir = cfg, datamodule, run_dir
        self.warmup, self.steps = warmup, steps
        self.design, self.changes = design, changes
        self.calls = 0

    def __call__(self, *callbacks: L.Callback) -> float:
        clock = BatchClock(self.warmup, self.warmup + self.steps)
        self.calls += 1
        run_dir = self.run_dir / f"fit{self.calls}"
        cfg = with_steps(self.cfg, clock.total, run_dir)
        module = build(cfg, self.design, self.changes)
        fit(cfg, module, self.datamodule, run_dir, clock, *callbacks)
        return clock.per_batch()
