"""The LightningModule: one autoencoder forward per batch, a generator step, a discriminator step.

Manual optimisation because the two players need different losses from the same forward:
the generator step backpropagates recon + perceptual + β·KL + λ·adv through the autoencoder,
the discriminator step sees the *detached* reconstruction of that same forward (the LDM
reference runs the autoencoder twice, once per optimizer). Before ``gan_start`` the step does
no discriminator work at all.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from vaegan.core import rng
from vaegan.core.guard import NonFiniteGuard
from vaegan.core.hooks import (
    GeneratorOutput,
    GeneratorOutputHook,
    ValidationReconstructionHook,
    callbacks_with,
)
from vaegan.core.lightning_logs import logger_writes_this_step
from vaegan.core.optim import OptimConfig
from vaegan.core.schedules import BetaSchedule, GanSchedule
from vaegan.data.batch import batch_images
from vaegan.losses.objective import VAEGANObjective
from vaegan.losses.perceptual import Perceptual
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.models.distributions import DiagonalGaussian
from vaegan.vocab.metric_names import (
    D_LOSS,
    GEN_STEP,
    KL,
    TRAIN_NONFINITE_STEPS,
    VAL_KL,
    VAL_LPIPS,
    VAL_PSNR,
    VAL_REC,
    VAL_SSIM,
    train,
)


class VAEGAN(L.LightningModule):
    """KL autoencoder + PatchGAN trained with alternating steps on generator-step schedules."""

    def __init__(
        self,
        autoencoder: AutoencoderKL,
        discriminator: nn.Module,
        objective: VAEGANObjective,
        beta_schedule: BetaSchedule,
        gan_schedule: GanSchedule,
        optim: OptimConfig | None = None,
        max_gen_steps: int | None = None,
        val_perceptual: Perceptual | None = None,
        guard: NonFiniteGuard | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.autoencoder = autoencoder
        self.discriminator = discriminator
        self.objective = objective
        self.beta_schedule = beta_schedule
        self.gan_schedule = gan_schedule
        self.optim = optim or OptimConfig()
        self.max_gen_steps = max_gen_steps
        # val/lpips uses the loss's own LPIPS when it has one
        self.val_perceptual = val_perceptual if objective.perceptual is None else None
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.guard = guard or NonFiniteGuard()  # skips non-finite steps, stops after K in a row
        # The generator-step counter: the clock of every schedule, saved in checkpoints.
        self.gen_step = 0
        self._generator_hooks: list[GeneratorOutputHook] = []  # found in on_train_start
        self._reconstruction_hooks: list[ValidationReconstructionHook] = []

    # ----------------------------------------------------------------- optimisers
    def generator_parameters(self) -> list[nn.Parameter]:
        params = list(self.autoencoder.parameters())
        if self.objective.learn_logvar:
            params.append(self.objective.logvar)
        return params

    def configure_optimizers(self) -> Any:
        optim = self.optim
        opt_g = optim.adam(self.generator_parameters(), optim.lr)
        opt_d = optim.adam(self.discriminator.parameters(), optim.disc_lr or optim.lr)
        return [opt_g, opt_d], [optim.warmup(opt_g), optim.warmup(opt_d)]

    # ----------------------------------------------------------------- training
    def forward(self, x: Tensor, sample_posterior: bool = True) -> tuple[Tensor, DiagonalGaussian]:
        return self.autoencoder(x, sample_posterior=sample_posterior)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One generator step, then (once the GAN is on) one discriminator step on the same
        forward's detached reconstruction."""
        x = batch_images(batch)
        step = self.gen_step
        gan_on = self.gan_schedule.active(step)
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        do_step = (step + 1) % self.optim.accumulate == 0

        xrec, posterior = self.autoencoder(x)

        self.toggle_optimizer(opt_g)
        terms = self.objective.generator_terms(
            x, xrec, posterior,
            beta=self.beta_schedule(step),
            capacity=self.beta_schedule.capacity(step),
            adv_factor=self.gan_schedule(step),
            logits_fake=self.discriminator(xrec) if gan_on else None,
            last_layer=self.autoencoder.last_layer if gan_on else None,
        )
        out = GeneratorOutput(x, xrec, posterior, terms)
        for hook in self._generator_hooks:  # gradient attribution needs the live graphs
            hook.on_generator_output(self.trainer, self, out)
        generator_logs = terms.logs
        self.manual_backward(terms.loss / self.optim.accumulate)
        if do_step:
            self._step(opt_g, sched_g, self.optim.grad_clip, "generator", generator_logs)
        self.untoggle_optimizer(opt_g)

        logs = {train(name): value for name, value in generator_logs.items()}
        if gan_on:
            logs.update(self._discriminator_step(x, xrec.detach(), opt_d, sched_d, do_step))
        logs[TRAIN_NONFINITE_STEPS] = float(self.guard.skipped)
        logs[GEN_STEP] = float(step)  # the step these terms were computed at
        self.gen_step += 1
        if self.max_gen_steps is not None and self.gen_step >= self.max_gen_steps:
            self.trainer.should_stop = True
        if logger_writes_this_step(self.trainer):  # only the batches Lightning writes
            self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False, logger=True)
        self.log(KL, generator_logs[KL], prog_bar=True, logger=False)

    def _discriminator_step(
        self, x: Tensor, xrec: Tensor, opt_d: Any, sched_d: Any, do_step: bool
    ) -> dict[str, Tensor]:
        self.toggle_optimizer(opt_d)
        terms = self.objective.discriminator_terms(self.discriminator(x), self.discriminator(xrec))
        self.manual_backward(terms[D_LOSS] / self.optim.accumulate)
        if do_step:
            self._step(opt_d, sched_d, self.optim.disc_grad_clip, "discriminator", terms)
        self.untoggle_optimizer(opt_d)
        return {train(name): value.detach() for name, value in terms.items()}

    def _step(
        self, opt: Any, sched: Any, clip: float | None, player: str, logs: dict[str, Tensor]
    ) -> None:
        if not self.guard.check(self, player, self.gen_step, opt, logs):
            opt.zero_grad(set_to_none=True)  # skip: a non-finite loss or gradient
            return
        if clip:
            self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()

    def on_train_start(self) -> None:
        """Find the hook callbacks once; restore the checkpoint's RNG states last, after
        Lightning has set everything up."""
        self._generator_hooks = callbacks_with(self._trainer, GeneratorOutputHook)
        states, self._rng_on_train_start = getattr(self, "_rng_on_train_start", None), None
        if states is not None:
            rng.restore(states)

    def on_validation_start(self) -> None:
        self._reconstruction_hooks = callbacks_with(self._trainer, ValidationReconstructionHook)

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        posterior = self.autoencoder.encode(x)
        xrec = self.autoencoder.decode(posterior.mode())
        x01, r01 = (x + 1) / 2, ((xrec + 1) / 2).clamp(0, 1)
        for hook in self._reconstruction_hooks:  # val/rfid (callbacks/rfid.py)
            hook.on_validation_reconstruction(self.trainer, self, x01, r01)
        self.val_psnr(r01, x01)
        self.val_ssim(r01, x01)
        metrics = {
            VAL_REC: (x - xrec).abs().mean(),
            VAL_KL: posterior.kl().mean(),
            VAL_PSNR: self.val_psnr,
            VAL_SSIM: self.val_ssim,
        }
        lpips_net = self.objective.perceptual or self.val_perceptual
        if lpips_net is not None:
            metrics[VAL_LPIPS] = lpips_net(x, xrec).mean()
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log(GEN_STEP, float(self.gen_step), on_step=False, on_epoch=True)

    @torch.no_grad()
    def sample_prior(self, n: int, image_size: int, generator: torch.Generator | None = None):
        """Decode z ~ N(0, I): what the prior produces (garbage when KL exploded, claim C4)."""
        shape = (n, *self.autoencoder.latent_shape(image_size))
        z = torch.randn(shape, generator=generator).to(self.device)
        return self.autoencoder.decode(z)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Saved at a generator-step boundary; the RNG states make the posterior noise after a
        # resume the noise the uninterrupted run draws (tests/test_resume.py).
        checkpoint["vaegan"] = {
            "gen_step": self.gen_step, "rng": rng.capture(), "nonfinite": self.guard.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("vaegan", {})
        self.gen_step = int(state.get("gen_step", 0))
        self._rng_on_train_start = state.get("rng")
        self.guard.load_state_dict(state.get("nonfinite", {}))

