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
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from vaegan.bench.config import BASE, bench_config
from vaegan.bench.timing import Ratio, interleaved

TIMES_FILE = "step_times.json"


class StepTimer(L.Callback):
    """Rank 0 writes the seconds between successive batch ends, after ``skip`` batches."""

    def __init__(self, skip: int = 2) -> None:
        self.skip = skip
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        if trainer.fit_loop.epoch_loop.batch_progress.total.completed >= self.skip:
            self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            steps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
            (Path(trainer.default_root_dir) / TIMES_FILE).write_text(json.dumps(steps))


def _step_seconds(
    run_dir: Path, overrides: Sequence[str], env: dict[str, str], warmup: int, steps: int
) -> float:
    """Median seconds per generator step of one ``vaegan-train`` run."""
    command = [
        sys.executable, "-m", "vaegan.train", *BASE, *overrides,
        f"steps={warmup + steps + 1}", "gan_start=0", "diagnose=false", "callbacks=none",
        "trainer.limit_val_batches=0", "++trainer.enable_progress_bar=false",
        "+callbacks.step_timer._target_=vaegan.bench.ddp_cost.StepTimer",
        f"+callbacks.step_timer.skip={warmup}", f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return statistics.median(json.loads((run_dir / TIMES_FILE).read_text()))


def _compare(
    label: str, variants: dict[str, tuple[list[str], dict[str, str]]], batch: int,
    warmup: int, steps: int, repeats: int, workdir: Path,
) -> list[dict[str, Any]]:
    """Interleaved repeats of every variant; one row per variant other than ``ddp``."""
    counter = iter(range(10_000))

    def timed(overrides: list[str], env: dict[str, str]) -> float:
        return _step_seconds(workdir / f"run{next(counter)}", overrides, env, warmup, steps)

    times = interleaved(
        {key: (lambda o=o, e=e: timed(o, e)) for key, (o, e) in variants.items()}, repeats
    )
    rows = []
    for key in variants:
        if key == "ddp":
            continue
        r = Ratio.of(times["ddp"], times[key])
        rows.append({
            "name": f"{label} vs {key}", "ratio": r.ratio, "low": r.low, "high": r.high,
            "ddp_s_per_step": r.a, "baseline_s_per_step": r.b, "global_batch": batch,
            "steps": steps, "repeats": repeats,
        })
    return rows


def measure(
    steps: int = 10, repeats: int = 3, warmup: int = 2, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """DDP (2 processes) / 1 process seconds per step at the same global batch, as ``rows``.

    On CPU the single process runs twice: with torch's default threads (all cores, what a
    user gets) and with 1 thread (what each DDP rank gets: Lightning divides the cores), so
    the DDP effect can be told apart from the threading effect.
    """
    with tempfile.TemporaryDirectory(prefix="vaegan-ddp-cost-") as tmp:
        workdir = Path(tmp)
        batch = int(bench_config(workdir / "compose", overrides).data.batch_size)
        if batch % 2:
            raise ValueError(f"the global batch {batch} must split over 2 processes")
        whole = [*overrides, f"data.batch_size={batch}"]
        half = [*overrides, f"data.batch_size={batch // 2}"]
        cpu = {
            "ddp": ([*half, "trainer=ddp_sim"], {}),
            "1 process": ([*whole, "trainer=cpu"], {}),
            "1 process, 1 thread": ([*whole, "trainer=cpu"], {"OMP_NUM_THREADS": "1"}),
        }
        rows = _compare("CPU, 2 gloo processes", cpu, batch, warmup, steps, repeats, workdir)
        if torch.cuda.device_count() >= 2:
            gpu = {
                "ddp": ([*half, "trainer=ddp", "trainer.devices=2"], {}),
                "1 GPU": ([*whole, "trainer=gpu"], {}),
            }
            rows += _compare("GPU, 2 GPUs", gpu, batch, warmup, steps, repeats, workdir)
    return {"rows": rows}
