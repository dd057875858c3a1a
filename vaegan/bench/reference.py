"""latent-diffusion's two-forward training step, built from vaegan's own modules.

LDM's ``AutoencoderKL.training_step`` + ``LPIPSWithDiscriminator`` under Lightning 1.x
automatic optimisation runs the step once per optimizer, each time with the other
optimizer's parameters frozen (``toggle_optimizer``):

- ``optimizer_idx=0``: a full autoencoder forward, the generator loss with the discriminator's
  logits on the reconstruction and the adaptive weight (two gradient calls), computed from
  the first step: ``disc_start`` only multiplies the adversarial term by 0;
- ``optimizer_idx=1``: a second full autoencoder forward (frozen: no graph), the
  discriminator on the real and the detached reconstruction, backward and Adam step, the
  loss multiplied by 0 before ``disc_start``.

``LDMReference`` is ``VAEGAN`` with that ``training_step``; everything else (networks,
objective, optimizers, schedules, the optimizer-step guard, logging) is the module's own, so
the bench compares designs, not implementations. Bench-only: never trained by vaegan-train.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from vaegan.core.module import VAEGAN, batch_images
from vaegan.train import build_module


class LDMReference(VAEGAN):
    """``VAEGAN`` stepped as latent-diffusion steps (see the module docstring)."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        step = self.gen_step
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()

        self.toggle_optimizer(opt_g)  # optimizer_idx 0
        xrec, posterior = self.autoencoder(x)
        out = self.objective.generator_terms(
            x, xrec, posterior,
            beta=self.beta_schedule(step),
            capacity=self.beta_schedule.capacity(step),
            adv_factor=self.gan_schedule(step),  # 0 before gan_start: the work still runs
            logits_fake=self.discriminator(xrec),
            last_layer=self.autoencoder.last_layer,
        )
        self._notify_generator_output(x, xrec, posterior, out)
        self.manual_backward(out.loss)
        self._step(opt_g, sched_g, self.optim.grad_clip, "generator", out.logs)
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)  # optimizer_idx 1: the autoencoder runs again, frozen
        xrec, _ = self.autoencoder(x)
        terms = self.objective.discriminator_terms(
            self.discriminator(x), self.discriminator(xrec.detach())
        )
        factor = 1.0 if self.gan_schedule.active(step) else 0.0
        self.manual_backward(factor * terms["d_loss"])
        self._step(opt_d, sched_d, self.optim.disc_grad_clip, "discriminator", terms)
        self.untoggle_optimizer(opt_d)

        self.gen_step += 1
        if self.max_gen_steps is not None and self.gen_step >= self.max_gen_steps:
            self.trainer.should_stop = True
        if self._logger_writes_this_step():
            logs = {f"train/{k}": v for k, v in {**out.logs, **terms}.items()}
            self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False, logger=True)


def build_reference(cfg: DictConfig) -> LDMReference:
    """What ``build_module(cfg)`` builds, stepped as LDM steps (same networks and state)."""
    module = build_module(cfg)
    module.__class__ = LDMReference  # a subclass with no state of its own
    return module


BUILDERS = {"vaegan": build_module, "reference": build_reference}
