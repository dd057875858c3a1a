"""Rows 1 and 6: what Lightning's loop, the callbacks and the logger add around
``VAEGAN.training_step``, and the share of a batch spent waiting for data.

One ``Trainer.fit`` as ``vaegan-train`` runs it (default callbacks, CSV logger, the configured
``DataLoader``, GAN on) with Lightning's ``SimpleProfiler``, which times every
``training_step`` call and every wait for a batch. A loop doing only that work would take
``step + wait`` per batch; the rest of a batch's wall time (end of one batch to the end of the
next) is the framework's. The Lightning calls inside the step (``manual_backward``, the
optimizer wrappers, ``toggle_optimizer``, ``log``) count as step. Both sides come from the same
batches of one fit, so each repeat is paired.
"""

from __future__ import annotations

import statistics
from typing import Any

import lightning as L

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.table import Row, Target, ratio_row
from vaegan.bench.timing import Ratio

PROFILED = "++trainer.profiler=simple"
# SimpleProfiler's action names (Lightning 2.6); the step's is "[Strategy]<class>.training_step"
FETCH = "[_TrainingEpochLoop].train_dataloader_next"


class StepAndWait(L.Callback):
    """The profiler's seconds inside ``training_step`` and waiting for batches, summed over the
    batches after the first ``warmup`` (the ``BatchClock``'s window)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.batches = warmup, 0
        self.step_seconds = self.wait_seconds = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.batches += 1
        if self.batches == self.warmup:
            trainer.profiler.recorded_durations.clear()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        durations = trainer.profiler.recorded_durations
        steps = [name for name in durations
                 if name.startswith("[Strategy]") and name.endswith(".training_step")]
        if len(steps) != 1 or FETCH not in durations:
            raise RuntimeError(f"the profiler's action names changed: {sorted(durations)}")
        self.step_seconds = sum(durations[steps[0]])
        self.wait_seconds = sum(durations[FETCH])


def measure(ctx: Context) -> list[Row]:
    cfg = ctx.config(GAN_ON, PROFILED)
    bench = ctx.fit_bench(cfg, ctx.datamodule(cfg))
    batch, step_and_wait, wait_share = [], [], []
    for _ in range(ctx.profile.repeats):
        probe = StepAndWait(bench.warmup)
        batch.append(bench(probe))
        step_and_wait.append((probe.step_seconds + probe.wait_seconds) / bench.steps)
        wait_share.append(probe.wait_seconds / bench.steps / batch[-1])
    share = statistics.median(wait_share)
    return [
        ratio_row(
            "1", "framework overhead: `Trainer.fit` per batch (default callbacks, CSV log) / "
            "the same batches' `VAEGAN.training_step` + wait for data; GAN on",
            Ratio.of(batch, step_and_wait), Target(1.05, at_most=True),
        ),
        Row(
            "6", f"data loading: share of a batch spent waiting for it "
            f"(num_workers={int(cfg.data.num_workers)})",
            f"{share:.1%}",
            f"{share * statistics.median(batch) * 1e3:.1f} ms per batch of "
            f"{cfg.data.batch_size}",
            value=share,
        ),
    ]
