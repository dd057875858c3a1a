"""The LightningModule: one autoencoder forward per batch, a generator step, a discriminator step.

Manual optimisation because the two players need different losses from the same forward:
the generator step backpropagates recon + perceptual + β·KL + λ·adv through the autoencoder,
the discriminator step sees the *detached* reconstruction of that same forward (the LDM
reference runs the autoencoder twice, once per optimizer). Before ``gan_start`` the step does
no discriminator work at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from vaegan.core import rng
from vaegan.core.guard import FaultsConfig, NonFiniteGuard
from vaegan.core.schedules import BetaSchedule, GanSchedule
from vaegan.losses.objective import GeneratorOutput, VAEGANObjective
from vaegan.losses.perceptual import Perceptual
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.models.distributions import DiagonalGaussian


@dataclass
class OptimConfig:
    """Adam settings for both players (LDM: lr 4.5e-6 × batch, betas (0.5, 0.9))."""

    lr: float = 2e-4
    disc_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = None
    disc_grad_clip: float | None = None
    accumulate: int = 1
    fused: bool = False  # torch's fused Adam kernel (CUDA, CPU): the same update in fewer kernels

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        if self.lr <= 0 or (self.disc_lr is not None and self.disc_lr <= 0):
            raise ValueError(f"optim.lr={self.lr} / optim.disc_lr={self.disc_lr} must be > 0")
        if self.accumulate < 1:
            raise ValueError(f"optim.accumulate={self.accumulate} must be >= 1")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps={self.warmup_steps} must be >= 0")


def batch_images(batch: Any) -> Tensor:
    """Images from a batch that is a tensor or an (images, labels) pair."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


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
        faults: FaultsConfig | None = None,
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
        self.val_perceptual = val_perceptual if objective.perceptual is None else None
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.guard = NonFiniteGuard(faults)  # skips non-finite steps, stops after K in a row
        # The generator-step counter: the clock of every schedule, saved in checkpoints.
        self.gen_step = 0

    # ----------------------------------------------------------------- optimisers
    def generator_parameters(self) -> list[nn.Parameter]:
        params = list(self.autoencoder.parameters())
        if self.objective.learn_logvar:
            params.append(self.objective.logvar)
        return params

    def configure_optimizers(self) -> Any:
        o = self.optim
        opt_g = torch.optim.Adam(
            self.generator_parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay,
            fused=o.fused,
        )
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=o.disc_lr or o.lr,
            betas=o.betas,
            weight_decay=o.weight_decay,
            fused=o.fused,
        )

        def warmup(step: int) -> float:
            return min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else 1.0

        scheds = [torch.optim.lr_scheduler.LambdaLR(opt, warmup) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in scheds]

    # ----------------------------------------------------------------- training
    def forward(self, x: Tensor, sample_posterior: bool = True) -> tuple[Tensor, DiagonalGaussian]:
        return self.autoencoder(x, sample_posterior=sample_posterior)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        step = self.gen_step
        gan_on = self.gan_schedule.active(step)
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        do_step = (step + 1) % self.optim.accumulate == 0

        xrec, posterior = self.autoencoder(x)

        self.toggle_optimizer(opt_g)
        out = self.objective.generator_terms(
            x,
            xrec,
            posterior,
            beta=self.beta_schedule(step),
            capacity=self.beta_schedule.capacity(step),
            adv_factor=self.gan_schedule(step),
            logits_fake=(
                self.guard.inject_logits(step, self.discriminator(xrec)) if gan_on else None
            ),
            last_layer=self.autoencoder.last_layer if gan_on else None,
        )
        out = self.guard.inject_generator(step, out)  # faults.inject_nan (testing hook)
        self._notify_generator_output(x, xrec, posterior, out)
        self.manual_backward(out.loss / self.optim.accumulate)
        if do_step:
            self._step(opt_g, sched_g, self.optim.grad_clip, "generator", out.logs)
        self.untoggle_optimizer(opt_g)

        logs = {f"train/{k}": v for k, v in out.logs.items()}
        if gan_on:
            logs.update(self._discriminator_step(x, xrec.detach(), opt_d, sched_d, do_step))
        logs["train/nonfinite_steps"] = float(self.guard.skipped)
        logs["gen_step"] = float(step)  # the step these terms were computed at
        self.gen_step += 1
        if self.max_gen_steps is not None and self.gen_step >= self.max_gen_steps:
            self.trainer.should_stop = True
        if self._logger_writes_this_step():
            self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False, logger=True)
        self.log("kl", out.logs["kl"], prog_bar=True, logger=False)

    def _logger_writes_this_step(self) -> bool:
        """Whether Lightning writes this batch's step metrics (every ``log_every_n_steps``, the
        last batch, fast_dev_run). It writes only the latest value of each, and each ``log``
        call costs Lightning ~0.5 ms: ~25 terms on every batch were ~3 % of a CPU step."""
        connector = getattr(self._trainer, "_logger_connector", None)
        if connector is None:
            return True
        return bool(connector.should_update_logs or self.trainer.fast_dev_run)

    def _discriminator_step(
        self, x: Tensor, xrec: Tensor, opt_d: Any, sched_d: Any, do_step: bool
    ) -> dict[str, Tensor]:
        self.toggle_optimizer(opt_d)
        terms = self.objective.discriminator_terms(self.discriminator(x), self.discriminator(xrec))
        terms = self.guard.inject_discriminator(self.gen_step, terms)
        self.manual_backward(terms["d_loss"] / self.optim.accumulate)
        if do_step:
            self._step(opt_d, sched_d, self.optim.disc_grad_clip, "discriminator", terms)
        self.untoggle_optimizer(opt_d)
        return {f"train/{k}": v.detach() for k, v in terms.items()}

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

    def _notify_generator_output(
        self, x: Tensor, xrec: Tensor, posterior: DiagonalGaussian, out: GeneratorOutput
    ) -> None:
        """Let callbacks read the terms while their graphs are alive (gradient attribution)."""
        self._notify("on_generator_output", x, xrec, posterior, out)

    def _notify(self, name: str, *args: Any) -> None:
        """Call ``name(trainer, module, *args)`` on the callbacks that define it."""
        if self._trainer is None:
            return
        for cb in self.trainer.callbacks:
            hook = getattr(cb, name, None)
            if hook is not None:
                hook(self.trainer, self, *args)

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        posterior = self.autoencoder.encode(x)
        xrec = self.autoencoder.decode(posterior.mode())
        x01, r01 = (x + 1) / 2, ((xrec + 1) / 2).clamp(0, 1)
        self._notify("on_validation_reconstruction", x01, r01)  # val/rfid (callbacks/rfid.py)
        self.val_psnr(r01, x01)
        self.val_ssim(r01, x01)
        lpips_net = self.objective.perceptual or self.val_perceptual
        metrics = {
            "val/rec": (x - xrec).abs().mean(),
            "val/kl": posterior.kl().mean(),
            "val/psnr": self.val_psnr,
            "val/ssim": self.val_ssim,
        }
        if lpips_net is not None:
            metrics["val/lpips"] = lpips_net(x, xrec).mean()
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log("gen_step", float(self.gen_step), on_step=False, on_epoch=True)

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

    def on_train_start(self) -> None:
        """Restore the checkpoint's RNG states last, after Lightning has set everything up."""
        states, self._rng_on_train_start = getattr(self, "_rng_on_train_start", None), None
        if states is not None:
            rng.restore(states)
