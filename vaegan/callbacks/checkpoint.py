"""``last.ckpt`` on the generator-step clock.

Lightning's ``every_n_train_steps`` counts ``global_step``, which advances once per optimizer
step: twice per batch once the GAN is on. This ModelCheckpoint saves ``last.ckpt`` every
``every_n_gen_steps`` generator steps and once more when training ends, whatever the phase.

The final save happens at the end of the last generator step, inside the loop, not in
``on_train_end``: by then Lightning has counted the epoch that ``should_stop`` cut short as
finished (and run a validation), so a checkpoint written there resumes at the start of a new
epoch, with another data order, and a resumed run drifts from the uninterrupted one.

The state is taken at the step's end, but the file is written only once that step's rows are
on disk: Lightning hands the step's train row to the loggers after ``on_train_batch_end`` and
runs the step's validation after that, and a resume from this checkpoint never logs either
again. So the checkpoint is taken (``dump_checkpoint``) at the step's end and written at the
start of the next step (or at the end of training), after the loggers have written and
fsynced every row up to it: a SIGKILL at any moment loses no row a checkpoint skips.
"""

from __future__ import annotations

import copy
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from vaegan.vocab.checks import require
from vaegan.vocab.layout import LAST_CKPT


class GenStepCheckpoint(ModelCheckpoint):
    """Keeps ``dirpath/last.ckpt`` current; set ``every_n_gen_steps`` in generator steps."""

    CHECKPOINT_NAME_LAST = LAST_CKPT.removesuffix(ModelCheckpoint.FILE_EXTENSION)

    def __init__(self, dirpath: str, every_n_gen_steps: int = 500, **kwargs: Any) -> None:
        require(every_n_gen_steps >= 1, "callbacks.checkpoint.every_n_gen_steps",
                every_n_gen_steps, "be >= 1")
        kwargs.setdefault("save_top_k", 0)
        super().__init__(
            dirpath=dirpath,
            save_last=True,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
            **kwargs,
        )
        self.every_n_gen_steps = every_n_gen_steps
        self._saved_at_gen_step = -1
        self._pending: tuple[str, dict[str, Any]] | None = None  # (path, state at step end)

    def save_last_now(self, trainer: L.Trainer, gen_step: int) -> None:
        """Write last.ckpt now (once per generator step; also RequeueOnSignal's save)."""
        if trainer.sanity_checking or bool(trainer.fast_dev_run):
            return
        if gen_step == self._saved_at_gen_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._saved_at_gen_step = gen_step

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Take the checkpoint now (the step's end); ``write_pending`` writes it once the
        step's metrics are on disk."""
        self._pending = (filepath, _detached_copy(
            trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        ))
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def write_pending(self, trainer: L.Trainer) -> None:
        """Flush every logger (rows up to the checkpoint's step), then write the checkpoint."""
        if self._pending is None:
            return
        filepath, checkpoint = self._pending
        self._pending = None
        for logger in trainer.loggers:
            logger.save()
        trainer.strategy.save_checkpoint(checkpoint, filepath)
        trainer.strategy.barrier("GenStepCheckpoint.write_pending")
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """The previous step's rows and validation are logged: write its checkpoint."""
        self.write_pending(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # should_stop: the module reached `steps` (or a callback stopped the run) this step
        if pl_module.gen_step % self.every_n_gen_steps == 0 or trainer.should_stop:
            self.save_last_now(trainer, pl_module.gen_step)

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        """A completed step's checkpoint is still good: write it."""
        self.write_pending(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Nothing: epochs of the embedded data are short and carry no meaning here."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Nothing: saves follow the generator-step clock only."""

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Write the last step's checkpoint (taken at its end), after its validation; a
        fallback save for runs that ended without a step-boundary one."""
        self.save_last_now(trainer, pl_module.gen_step)
        self.write_pending(trainer)


def _detached_copy(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A copy of every container and plain value, sharing the tensors.

    Between the step's end and the write nothing changes a tensor in place (the next optimizer
    step comes after the write), but the loops, the data loader and the callbacks go on
    updating the plain state their ``state_dict`` returned.
    """
    memo: dict[int, Any] = {}

    def share(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            memo[id(node)] = node
        elif isinstance(node, dict):
            for value in node.values():
                share(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                share(value)

    share(checkpoint)
    return copy.deepcopy(checkpoint, memo)
