"""Test-only Lightning callbacks, added to a run with ``+callbacks.<name>._target_=...``.

They live in the ``tests`` package so that DDP child processes (``python -m vaegan.train``,
started with the repository on ``PYTHONPATH``) can import them too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L


class SignalAt(L.Callback):
    """Sends ``signal`` to this process after generator step ``gen_step`` (a pre-emption);
    with ``run_dir_name``, only in a run dir of that name (e.g. a gan_control pair's
    ``control``)."""

    def __init__(self, gen_step: int, name: str = "SIGUSR1", run_dir_name: str | None = None):
        self.gen_step = gen_step
        self.signal = signal.Signals[name]
        self.run_dir_name = run_dir_name

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        here = Path(trainer.default_root_dir).name
        if pl_module.gen_step == self.gen_step and self.run_dir_name in (None, here):
            os.kill(os.getpid(), self.signal)


class WeightDigest(L.Callback):
    """At train end each rank writes to RUN_DIR/weights_rank<r>: the generator step, the
    SHA-256 of its parameters, and its training sampler's ``rank/num_replicas``."""

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        digest = hashlib.sha256()
        for name, param in sorted(pl_module.named_parameters()):
            digest.update(name.encode())
            digest.update(param.detach().cpu().contiguous().numpy().tobytes())
        sampler = trainer.train_dataloader.sampler
        shard = f"{getattr(sampler, 'rank', '?')}/{getattr(sampler, 'num_replicas', '?')}"
        path = Path(trainer.default_root_dir) / f"weights_rank{trainer.global_rank}"
        path.write_text(f"{pl_module.gen_step} {digest.hexdigest()} {shard}\n")


class PauseAt(L.Callback):
    """After generator step ``gen_step`` writes RUN_DIR/paused and waits (up to ``seconds``)
    for a pre-emption signal to reach ``RequeueOnSignal``: the window in which a test
    pre-empts a real SLURM job at a known step. Once per run dir (the resumed run goes on);
    with ``run_dir_name``, only in a run dir of that name (e.g. a gan_control pair's
    ``control``). Training's numbers are untouched: it only waits."""

    def __init__(self, gen_step: int, seconds: float = 300.0, run_dir_name: str | None = None):
        self.gen_step, self.seconds, self.run_dir_name = gen_step, seconds, run_dir_name

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        from vaegan.cluster.requeue import RequeueOnSignal

        run_dir = Path(trainer.default_root_dir)
        marker = run_dir / "paused"
        if (pl_module.gen_step != self.gen_step or marker.exists()
                or self.run_dir_name not in (None, run_dir.name)):
            return
        requeue = next(cb for cb in trainer.callbacks if isinstance(cb, RequeueOnSignal))
        marker.write_text(f"{self.gen_step}\n")
        deadline = time.monotonic() + self.seconds
        while requeue.received is None and time.monotonic() < deadline:
            time.sleep(0.2)
