"""DDP's cost: seconds per generator step with 2 processes vs 1, on the same global batch.

Each variant is the real ``vaegan-train`` in a fresh process (Lightning's DDP re-launches the
script, so it cannot run inside the bench's own process): ``trainer=ddp_sim`` (2 CPU processes,
gloo, batch B/2 each) against ``trainer=cpu`` (batch B), the GAN on from the first step so both
players and the unused-parameter walk are in every step. ``StepTimer`` stamps the end of every
batch after the warm-up; the median interval (data, both players, all-reduces) is a variant's
step time. With two or more GPUs the same pair runs as ``trainer=gpu`` vs ``trainer=ddp``.
The ratio is ddp / single: below 1 DDP pays off, above 1 its communication costs more than the
halved batch saves. On CPU Lightning gives each rank cores / processes threads, so the single
process is timed with its default threads and with one thread, to tell DDP from threading.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from itertools import count
from pathlib import Path
from typing import Any

import lightning as L
import torch

from vaegan.bench.config import BASE
from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.fit import BatchClock
from vaegan.bench.table import Row, ratio_row
from vaegan.bench.timing import Ratio, interleaved

TIMES_FILE = "step_times.json"
# variant -> (overrides, environment); "ddp" is the numerator of every other's ratio
Variants = dict[str, tuple[list[str], dict[str, str]]]


class StepTimer(BatchClock):
    """``BatchClock`` in a ``vaegan-train`` process: rank 0 writes the batch intervals after
    ``warmup`` batches to ``TIMES_FILE`` in the run dir (the run stops at its ``steps``)."""

    def __init__(self, warmup: int = 2) -> None:
        super().__init__(warmup, None)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / TIMES_FILE
            path.write_text(json.dumps(self.intervals()))


def _step_seconds(
    run_dir: Path, overrides: Sequence[str], env: dict[str, str], warmup: int, steps: int
) -> float:
    """Median seconds per generator step of one ``vaegan-train`` run."""
    command = [
        sys.executable, "-m", "vaegan.train", *BASE, *overrides,
        f"steps={warmup + steps + 1}", GAN_ON, "diagnose=false", "callbacks=none",
        "trainer.limit_val_batches=0", "++trainer.enable_progress_bar=false",
        f"+callbacks.step_timer._target_={StepTimer.__module__}.StepTimer",
        f"+callbacks.step_timer.warmup={warmup}", f"hydra.run.dir={run_dir}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True,
                               env={**os.environ, **env})
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    return statistics.median(json.loads((run_dir / TIMES_FILE).read_text()))


def _compare(ctx: Context, label: str, variants: Variants, batch: int, steps: int) -> list[Row]:
    """Interleaved repeats of every variant; one row per variant other than ``ddp``."""
    runs = count()
    warmup, repeats = ctx.profile.warmup, ctx.profile.long_repeats

    def timed(overrides: list[str], env: dict[str, str]) -> float:
        return _step_seconds(ctx.run_dir / f"ddp{next(runs)}", overrides, env, warmup, steps)

    times = interleaved({name: (lambda overrides=overrides, env=env: timed(overrides, env))
                         for name, (overrides, env) in variants.items()}, repeats)
    rows = []
    for name in list(variants)[1:]:  # after "ddp"
        row = ratio_row("DDP", f"DDP: 2 processes / 1 process, same global batch: {label} vs "
                        f"{name}", Ratio.of(times["ddp"], times[name]))
        rows.append(replace(row, detail=f"{row.detail}; global batch {batch}, {steps} steps × "
                                        f"{repeats} repeats"))
    return rows


def measure(ctx: Context) -> list[Row]:
    """DDP (2 processes) / 1 process seconds per step at the same global batch.

    On CPU the single process runs twice: with torch's default threads (all cores, what a
    user gets) and with 1 thread (what each DDP rank gets: Lightning divides the cores), so
    the DDP effect can be told apart from the threading effect.
    """
    batch = int(ctx.config().data.batch_size)
    if batch % 2:
        raise ValueError(f"the global batch {batch} must split over 2 processes")
    whole = [*ctx.profile.size, f"data.batch_size={batch}"]
    half = [*ctx.profile.size, f"data.batch_size={batch // 2}"]
    steps = ctx.profile.steps
    cpu: Variants = {
        "ddp": ([*half, "trainer=ddp_sim"], {}),
        "1 process": ([*whole, "trainer=cpu"], {}),
        "1 process, 1 thread": ([*whole, "trainer=cpu"], {"OMP_NUM_THREADS": "1"}),
    }
    rows = _compare(ctx, "CPU, 2 gloo processes", cpu, batch, steps)
    if torch.cuda.device_count() >= 2:
        gpu: Variants = {
            "ddp": ([*half, "trainer=ddp", "trainer.devices=2"], {}),
            "1 GPU": ([*whole, "trainer=gpu"], {}),
        }
        rows += _compare(ctx, "GPU, 2 GPUs", gpu, batch, steps)
    return rows
