"""Pre-emption: on SLURM's warning signal, stop at a step boundary with a checkpoint, requeue.

``#SBATCH --signal=USR1@120`` makes SLURM send SIGUSR1 to every task two minutes before the
time limit. Lightning's own auto-requeue saves inside the signal handler, i.e. wherever the main
thread is (between the generator and the discriminator step, or, under DDP, while another rank
is in an all-reduce); see ``vaegan/cluster/slurm.py``. Here the handler only sets a flag. At the
end of each generator step the ranks agree (one all-reduce) whether any of them got the signal; if
so ``last.ckpt`` is written right there, the trainer stops, and rank 0 runs
``scontrol requeue $SLURM_JOB_ID``. The requeued job runs the same command; with
``ckpt_path=last`` it resumes exactly where this one stopped. Off SLURM the signal still means
"checkpoint and stop": ``kill -USR1 <pid>``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from vaegan.app.sweep import mark_run
from vaegan.callbacks.checkpoint import GenStepCheckpoint
from vaegan.vocab.layout import RunLayout, last_checkpoint_path

log = logging.getLogger("vaegan")

DEFAULT_COMMAND = ("scontrol", "requeue", "{job_id}")


def exit_code(signum: int) -> int:
    """What a shell reports for a process ended by ``signum``: 128 + its number."""
    return 128 + int(signum)


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes (``ARRAYID_TASKID`` for an array task)."""
    array_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_id is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array_id}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class RequeueOnSignal(L.Callback):
    """Checkpoint-and-stop on ``signals`` (names, e.g. ``[SIGUSR1, SIGTERM]``), then requeue on
    SLURM when the signal is one of ``requeue_on``."""

    def __init__(
        self,
        signals: Sequence[str] = ("SIGUSR1", "SIGTERM"),
        command: Sequence[str] = DEFAULT_COMMAND,
        requeue_on: Sequence[str] = ("SIGUSR1",),
    ) -> None:
        names = [*signals, *requeue_on]
        unknown = [n for n in names if n not in signal.Signals.__members__]
        if unknown:
            raise ValueError(
                f"callbacks.requeue.signals={list(signals)} / requeue_on={list(requeue_on)}: "
                f"{unknown[0]!r} is not a signal name; allowed: e.g. SIGUSR1, SIGUSR2, SIGTERM"
            )
        self.signals = [signal.Signals[name] for name in signals]
        self.requeue_on = {signal.Signals[name] for name in requeue_on}  # SIGTERM: scancel too
        self.command = list(command)
        self.received: signal.Signals | None = None
        self.stopped_at: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)  # act at the next step boundary, not here

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("requeue: not in the main thread, cannot handle %s", self.signals)
            return
        self.received, self.stopped_at = None, None
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.stopped_at is not None or not trainer.strategy.reduce_boolean_decision(
            self.received is not None, all=False
        ):
            return
        self.stopped_at = int(pl_module.gen_step)
        # the name: %s of a Signals member is its number on Python >= 3.11 ("15: checkpoint")
        name = self.received.name if self.received is not None else "another rank's signal"
        log.warning("%s: checkpoint after generator step %d, stop", name, self.stopped_at)
        # Saved at this step's end, not at train end: Lightning counts an epoch that
        # should_stop cut short as finished, so a train-end checkpoint would resume at a new
        # epoch. GenStepCheckpoint saves when should_stop is set, and Lightning runs
        # checkpoint callbacks after all others, so every callback's state of this step
        # (an EMA update, say) is in the file.
        trainer.should_stop = True
        if not any(isinstance(cb, GenStepCheckpoint) for cb in trainer.callbacks):
            trainer.save_checkpoint(last_checkpoint_path(trainer))

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Training is over and the checkpoint written: rank 0 requeues the SLURM job."""
        self._restore_handlers()
        if self.stopped_at is None or not trainer.is_global_zero:
            return
        job_id = slurm_job_id()
        requeue = job_id is not None and self.received in self.requeue_on
        status = "requeued" if requeue and self._requeue(job_id) else "stopped"
        mark_run(Path(trainer.default_root_dir), status)

    def _requeue(self, job_id: str) -> bool:
        command = [part.format(job_id=job_id) for part in self.command]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as err:  # scontrol missing: the checkpoint is there, resume by hand
            log.warning("requeue %s failed: %s", job_id, err)
            return False
        log.warning("requeue %s: %s %s", job_id, result.returncode or "ok", result.stderr.strip())
        return result.returncode == 0

    @property
    def stopped_by(self) -> signal.Signals | None:
        """The signal that stopped training (None: it ran to the end)."""
        return self.received if self.stopped_at is not None else None

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


def stopped_by(trainer: L.Trainer) -> signal.Signals | None:
    """The signal a ``RequeueOnSignal`` of ``trainer`` stopped the run on, if any."""
    for cb in trainer.callbacks:
        if isinstance(cb, RequeueOnSignal) and cb.stopped_by is not None:
            return cb.stopped_by
    return None


def exit_if_stopped(result: dict[str, Any]) -> None:
    """After ``run()``: a run a signal stopped says so and exits ``128 + signal number``.

    Not "completed" (exit 0, diagnosis): the run is unfinished, and a scheduler that sees 0
    would not run it again. ``result`` is ``run()``'s (a gan_control pair nests ``control``).
    """
    for part in (result, result.get("control") or {}):
        signum = part.get("stopped_by")
        if signum is not None:
            last = RunLayout(part["run_dir"]).last_ckpt
            print(
                f"stopped by {signal.Signals(signum).name} after generator step "
                f"{part['gen_step']}: {last}; to continue, run "
                "the same command with ckpt_path=last (same run dir)",
                file=sys.stderr, flush=True,
            )
            sys.exit(exit_code(signum))
