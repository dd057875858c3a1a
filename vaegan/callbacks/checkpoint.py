"""``last.ckpt`` on the generator-step clock.

Lightning's ``every_n_train_steps`` counts ``global_step``, which advances once per optimizer
step: twice per batch once the GAN is on. This ModelCheckpoint saves ``last.ckpt`` every
``every_n_gen_steps`` generator steps and once more when training ends, whatever the phase.

The final save happens at the end of the last generator step, inside the loop, not in
``on_train_end``: by then Lightning has counted the epoch that ``should_stop`` cut short as
finished (and run a validation), so a checkpoint written there resumes at the start of a new
epoch, with another data order, and a resumed run drifts from the uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from vaegan.app.layout import LAST_CKPT


class GenStepCheckpoint(ModelCheckpoint):
    """Keeps ``dirpath/last.ckpt`` current; set ``every_n_gen_steps`` in generator steps."""

    CHECKPOINT_NAME_LAST = LAST_CKPT.removesuffix(ModelCheckpoint.FILE_EXTENSION)

    def __init__(self, dirpath: str, every_n_gen_steps: int = 500, **kwargs: Any) -> None:
        if every_n_gen_steps < 1:
            raise ValueError(
                f"callbacks.checkpoint.every_n_gen_steps={every_n_gen_steps} must be >= 1"
            )
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

    def save_last_now(self, trainer: L.Trainer, gen_step: int) -> None:
        """Write last.ckpt now (once per generator step; also RequeueOnSignal's save)."""
        if trainer.sanity_checking or bool(trainer.fast_dev_run):
            return
        if gen_step == self._saved_at_gen_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._saved_at_gen_step = gen_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # should_stop: the module reached `steps` (or a callback stopped the run) this step
        if pl_module.gen_step % self.every_n_gen_steps == 0 or trainer.should_stop:
            self.save_last_now(trainer, pl_module.gen_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Nothing: epochs of the embedded data are short and carry no meaning here."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Nothing: saves follow the generator-step clock only."""

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """A fallback for runs that ended without a step-boundary save (skips otherwise)."""
        self.save_last_now(trainer, pl_module.gen_step)
