"""The training bar counts generator steps toward ``steps``, not batches of an epoch.

A run is defined by its generator steps (``steps=1200``); Lightning's bar counts batches of
the current epoch ("Epoch 3: 47% 120/255"), which says nothing about how far the run is. This
bar reads the module's ``gen_step`` and ``max_gen_steps`` (vaegan.core.module.VAEGAN): one bar
for the whole run, "train: 10% 120/1200", starting at the resumed step of a resumed run.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

DESCRIPTION = "train"


class GenStepProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, its training bar counting ``pl_module.gen_step`` toward
    ``pl_module.max_gen_steps`` (no total when that is None). Validation bars are Lightning's.

    One bar spans the run's epochs (Lightning's ``leave`` is about per-epoch bars; it has none).
    """

    @property
    def train_description(self) -> str:
        return DESCRIPTION

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=pl_module.max_gen_steps)
        # tqdm's rate and time left count from `initial`: a resumed run's steps so far are not
        # steps of this process
        bar.initial = bar.n = pl_module.gen_step
        bar.refresh()

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """Nothing: Lightning's bar restarts at 0 of the epoch's batches here."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any
    ) -> None:
        bar, step = self.train_progress_bar, pl_module.gen_step
        if bar.disable or not (step % self.refresh_rate == 0 or step == bar.total):
            return
        bar.n = step
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


def progress_bar(enabled: bool = True, refresh_rate: int = 1) -> L.Callback:
    """The bar for ``callbacks.progress``; a callback that does nothing when
    ``trainer.enable_progress_bar=false`` (Lightning refuses a progress-bar callback then, so
    turning the bar off takes that one override, not a second ``callbacks.progress=null``)."""
    return GenStepProgressBar(refresh_rate) if enabled else L.Callback()
