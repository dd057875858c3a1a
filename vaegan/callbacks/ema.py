"""EMA of the autoencoder's weights (Stable Diffusion's ``sd-vae-ft-ema`` was trained with one).

Built on ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn`` (torch's own EMA
update, foreach over all parameters) rather than Lightning's ``EMAWeightAveraging``: that one
averages the whole LightningModule (discriminator and LPIPS included), counts Lightning's
``global_step`` (two optimizer steps per batch once the GAN is on, so ``start`` would not be in
generator steps), puts the average into the checkpoint's ``state_dict`` and copies it into the
model when training ends. Here only the autoencoder is averaged, on the generator-step clock;
the trained weights stay the trained weights, and the average is saved beside them under the
checkpoint's ``ema`` key (``vaegan-export`` and ``load_autoencoder`` read it).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vaegan.vocab.checks import require


class EMA(L.Callback):
    """``decay`` (e.g. 0.9999; null: off), updated after every generator step from ``start``.

    The first update copies the weights; validation (and so ``val/*`` and the image grids)
    runs on the averaged weights, swapped in for the validation loop and back after it.
    """

    def __init__(self, decay: float | None = None, start: int = 0) -> None:
        require(decay is None or 0.0 < decay < 1.0, "callbacks.ema.decay", decay, "be in (0, 1)",
                "null for off")
        require(start >= 0, "callbacks.ema.start", start, "be >= 0 (a generator step)")
        self.decay = decay
        self.start = int(start)
        self.average: AveragedModel | None = None
        self._updated_at = -1  # generator steps completed at the last update
        self._pending: dict[str, Any] | None = None  # loaded before the model is on its device
        self._swapped = False

    @property
    def enabled(self) -> bool:
        return self.decay is not None

    def _average(self, autoencoder: torch.nn.Module) -> AveragedModel:
        """Created on the model's device the first time it is needed (after a resume, from the
        checkpoint's state)."""
        if self.average is None:
            self.average = AveragedModel(
                autoencoder, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
            )
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self.average.module.load_state_dict(pending["autoencoder"])
                self.average.n_averaged.fill_(int(pending["n_averaged"]))
                self._updated_at = int(pending["updated_at"])
        return self.average

    def _catch_up(self, pl_module: Any) -> None:
        """Average in the weights after the latest completed generator step, once."""
        if not self.enabled or self._swapped:
            return
        if self._pending is not None:  # resumed: the saved average and its last update first
            self._average(pl_module.autoencoder)
        done = pl_module.gen_step
        if done <= max(self.start, self._updated_at):
            return
        self._average(pl_module.autoencoder).update_parameters(pl_module.autoencoder)
        self._updated_at = done

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self._catch_up(pl_module)

    def _swap(self, pl_module: Any) -> None:
        average = self._average(pl_module.autoencoder)
        with torch.no_grad():
            for mine, theirs in zip(average.module.state_dict().values(),
                                    pl_module.autoencoder.state_dict().values(), strict=True):
                held = theirs.clone()
                theirs.copy_(mine)
                mine.copy_(held)
        self._swapped = not self._swapped

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._catch_up(pl_module)
        if self.enabled and self.average is not None and int(self.average.n_averaged) > 0:
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._swapped:
            self._swap(pl_module)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]
    ) -> None:
        if not self.enabled:
            return
        self._catch_up(pl_module)
        if self.average is None:  # not started yet (gen_step <= start)
            return
        average = {k: v.detach().clone() for k, v in self.average.module.state_dict().items()}
        if self._swapped:  # saved during validation: the model holds the average right now
            state = checkpoint["state_dict"]
            average, raw = {k: state[f"autoencoder.{k}"] for k in average}, average
            state.update({f"autoencoder.{k}": v for k, v in raw.items()})
        checkpoint["ema"] = {
            "autoencoder": average, "n_averaged": int(self.average.n_averaged),
            "updated_at": self._updated_at, "decay": self.decay, "start": self.start,
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]
    ) -> None:
        if self.enabled and checkpoint.get("ema"):
            self.average, self._pending = None, dict(checkpoint["ema"])
