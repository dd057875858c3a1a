"""latent-diffusion's two-forward training step, on vaegan's own module.

LDM's ``AutoencoderKL.training_step(batch, batch_idx, optimizer_idx)`` + ``LPIPSWithDiscriminator``
under Lightning 1.x automatic optimisation runs the whole step once per optimizer, each time
with the other optimizer's parameters frozen (``toggle_optimizer``):

- ``optimizer_idx=0``: a full autoencoder forward, the generator loss with the discriminator's
  logits on the reconstruction and the adaptive weight (two gradient calls), computed from
  the first step: ``disc_start`` only multiplies the adversarial term by 0;
- ``optimizer_idx=1``: a second full autoencoder forward (frozen: no graph), the
  discriminator on the real and the detached reconstruction, backward and Adam step, the
  loss multiplied by 0 before ``disc_start``.

``LDMReference`` drives that loop and takes each player's loss from the module's own objective
(``generator_terms``, ``discriminator_terms``); networks, optimizers, schedules and the
optimizer step (with its non-finite guard) are the module's, so the bench compares designs,
not implementations. LDM's per-step logging is left out (vaegan logs every
``log_every_n_steps``). The ``BatchClock`` stops its fits. Bench-only: never trained by
vaegan-train.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from vaegan.core.module import VAEGAN
from vaegan.data.batch import batch_images
from vaegan.vocab.metric_names import D_LOSS

PLAYERS = ("generator", "discriminator")  # optimizer_idx 0 and 1


class LDMReference(VAEGAN):
    """``VAEGAN`` stepped as latent-diffusion steps (see the module docstring)."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        optimizers, schedulers = self.optimizers(), self.lr_schedulers()
        clips = (self.optim.grad_clip, self.optim.disc_grad_clip)
        for optimizer_idx, player in enumerate(PLAYERS):
            optimizer = optimizers[optimizer_idx]
            self.toggle_optimizer(optimizer)
            loss, logs = self.ldm_loss(x, optimizer_idx)
            self.manual_backward(loss)
            self._step(optimizer, schedulers[optimizer_idx], clips[optimizer_idx], player, logs)
            self.untoggle_optimizer(optimizer)
        self.gen_step += 1

    def ldm_loss(self, x: Tensor, optimizer_idx: int) -> tuple[Tensor, dict[str, Tensor]]:
        """One optimizer's pass of LDM's step: a full autoencoder forward, then that player's
        loss (and its logs, which name a non-finite term)."""
        xrec, posterior = self.autoencoder(x)
        step = self.gen_step
        if optimizer_idx == 0:
            terms = self.objective.generator_terms(
                x, xrec, posterior,
                beta=self.beta_schedule(step),
                capacity=self.beta_schedule.capacity(step),
                adv_factor=self.gan_schedule(step),  # 0 before gan_start: the work still runs
                logits_fake=self.discriminator(xrec),
                last_layer=self.autoencoder.last_layer,
            )
            return terms.loss, terms.logs
        terms = self.objective.discriminator_terms(
            self.discriminator(x), self.discriminator(xrec.detach())
        )
        disc_factor = 1.0 if self.gan_schedule.active(step) else 0.0
        return disc_factor * terms[D_LOSS], terms
