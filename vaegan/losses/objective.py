"""The VAE-GAN objective: data in, terms out.

Generator loss (one autoencoder forward per batch)::

    r      = |x − x̂| (or squared) + w_p · LPIPS(x, x̂)        elementwise, LPIPS broadcast
    nll    = reduce(r · e^(−s) + s)  if the output log-variance s is learned, else reduce(r)
    kl     = E_batch Σ_dims ½(μ² + σ² − 1 − log σ²)          (free bits: Σ_c max(kl_c, λ))
    kl_obj = β · kl                 or  β · |kl − C(t)|      for the capacity schedule
    adv    = λ_adv · L_G(D(x̂)),  λ_adv = adaptive · disc_weight · factor(t)
    loss   = nll + kl_obj + adv

``reduce`` is ``sum`` (per sample, LDM's scale) or ``mean`` (per element). ``generator_terms``
computes these straight down into one ``GeneratorTerms``; its ``logs`` (every term unweighted
and weighted, detached) and ``parts`` (the weighted pieces of the autoencoder's gradient, with
their graphs, for gradient attribution) are derived from it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vaegan.losses.adversarial import adaptive_weight, gan_loss
from vaegan.losses.perceptual import Perceptual
from vaegan.losses.precision import autocast_off, fp32_posterior
from vaegan.losses.reconstruction import nll_with_learned_logvar, pixel_loss, reduction
from vaegan.models.distributions import DiagonalGaussian
from vaegan.vocab import metric_names as names
from vaegan.vocab.checks import require


@dataclass
class GeneratorTerms:
    """One batch's generator terms; ``loss`` is what the generator step backpropagates.

    Unweighted: ``rec``, ``perceptual`` (None without LPIPS), ``kl`` and its μ²/variance parts,
    ``g_adv``. Weighted: ``perceptual_weighted`` (w_p·LPIPS, reduced like ``rec``), ``nll``,
    ``kl_obj`` (β·KL), ``adv`` (λ_adv·g_adv). ``gan_on`` is False before ``gan_start``, where
    ``g_adv``, ``adv_weight`` and ``adv`` are zero and no discriminator ran.
    """

    rec: Tensor
    rec_per_pixel: Tensor
    perceptual: Tensor | None
    perceptual_weighted: Tensor | None
    logvar: Tensor
    learn_logvar: bool
    nll: Tensor
    kl: Tensor
    kl_mu: Tensor
    kl_var: Tensor
    kl_obj: Tensor
    beta: float
    capacity: float | None
    gan_on: bool
    g_adv: Tensor
    adv_weight: Tensor
    adaptive_weight: Tensor | None
    adaptive_clamped: Tensor | None
    adv: Tensor
    loss: Tensor

    @property
    def parts(self) -> dict[str, Tensor]:
        """The weighted terms whose gradients sum to the autoencoder's (the output
        log-variance's own ``+ s`` has none)."""
        scale = torch.exp(-self.logvar) if self.learn_logvar else 1.0
        parts = {names.REC: scale * self.rec}
        if self.perceptual_weighted is not None:
            parts[names.PERCEPTUAL] = scale * self.perceptual_weighted
        parts[names.KL] = self.kl_obj
        if self.gan_on:
            parts[names.ADV] = self.adv
        return parts

    @property
    def logs(self) -> dict[str, Tensor]:
        """Every term by its metric name (``train/<name>``), detached, in the objective's
        order (the guard names the first non-finite one)."""
        logs = {names.REC: self.rec, names.REC_PER_PIXEL: self.rec_per_pixel}
        if self.perceptual is not None:
            logs[names.PERCEPTUAL] = self.perceptual
            logs[names.PERCEPTUAL_WEIGHTED] = self.perceptual_weighted
        logs.update({names.NLL: self.nll, names.LOGVAR: self.logvar, names.KL: self.kl,
                     names.KL_MU: self.kl_mu, names.KL_VAR: self.kl_var,
                     names.KL_WEIGHTED: self.kl_obj, names.BETA: torch.tensor(float(self.beta))})
        if self.capacity is not None:
            logs[names.CAPACITY] = torch.tensor(float(self.capacity))
        if self.adaptive_weight is not None:
            logs[names.ADAPTIVE_WEIGHT] = self.adaptive_weight
            logs[names.ADAPTIVE_CLAMPED] = self.adaptive_clamped
        logs[names.G_ADV] = self.g_adv
        if self.gan_on:
            logs[names.G_ADV_WEIGHTED] = self.adv
        logs.update({names.ADV_WEIGHT: self.adv_weight, names.LOSS: self.loss})
        return {name: value.detach() for name, value in logs.items()}


class VAEGANObjective(nn.Module):
    """Reconstruction + perceptual + β·KL + adversarial, with LDM's adaptive weight."""

    def __init__(
        self,
        rec_kind: str = "l1",
        rec_reduction: str = "mean",
        perceptual_weight: float = 1.0,
        perceptual: dict | None = None,
        learn_logvar: bool = False,
        logvar_init: float = 0.0,
        free_bits: float = 0.0,
        adv_loss: str = "hinge",
        disc_weight: float = 0.5,
        adaptive_weight: bool = True,
        adaptive_max: float = 1e4,
    ) -> None:
        super().__init__()
        for key, value in {"perceptual_weight": perceptual_weight, "free_bits": free_bits,
                           "disc_weight": disc_weight, "adaptive_max": adaptive_max}.items():
            require(value >= 0, f"loss.objective.{key}", value, "be >= 0")
        self.rec_kind, self.rec_reduction = rec_kind, rec_reduction  # read by the study, callbacks
        self.pixel_loss = pixel_loss(rec_kind)
        self.reduce = reduction(rec_reduction)
        self.gan = gan_loss(adv_loss)
        self.perceptual_weight = perceptual_weight
        self.perceptual = Perceptual(**(perceptual or {})) if perceptual_weight > 0 else None
        self.learn_logvar = learn_logvar
        self.logvar = nn.Parameter(torch.tensor(float(logvar_init)), requires_grad=learn_logvar)
        self.free_bits = free_bits
        self.disc_weight = disc_weight
        self.use_adaptive_weight = adaptive_weight
        self.adaptive_max = adaptive_max

    def generator_terms(
        self,
        x: Tensor,
        xrec: Tensor,
        posterior: DiagonalGaussian,
        beta: float,
        capacity: float | None = None,
        adv_factor: float = 0.0,
        logits_fake: Tensor | None = None,
        last_layer: Tensor | None = None,
    ) -> GeneratorTerms:
        """All generator terms for one batch; ``logits_fake`` is None while the GAN is off."""
        pixel = self.pixel_loss(x, xrec)
        rec = self.reduce(pixel)
        lpips = self.perceptual(x, xrec) if self.perceptual is not None else None  # [B,1,1,1]
        weighted_lpips = None if lpips is None else self.perceptual_weight * lpips.expand_as(pixel)
        nll = self.reduce(self._nll(pixel if lpips is None else pixel + weighted_lpips))

        with autocast_off(x):  # KL in fp32 under mixed precision (see vaegan.losses.precision)
            posterior = fp32_posterior(posterior)
            kl = posterior.kl().mean()
            kl_mu, kl_var = posterior.kl_parts()
            kl_obj = self._kl_objective(posterior, kl, beta, capacity)

        gan_on = logits_fake is not None  # before gan_start no discriminator ran
        if gan_on:
            g_adv = self.gan.generator(logits_fake.float())
            adaptive, clamped = self._adaptive(nll, g_adv, last_layer)
            adv_weight = self._adv_weight(adaptive, g_adv) * adv_factor
        else:
            g_adv = adv_weight = torch.zeros((), device=nll.device)
            adaptive = clamped = None
        adv = adv_weight * g_adv

        loss = nll + kl_obj + adv

        return GeneratorTerms(
            rec=rec, rec_per_pixel=pixel.mean(),
            perceptual=None if lpips is None else lpips.mean(),
            perceptual_weighted=None if lpips is None else self.reduce(weighted_lpips),
            logvar=self.logvar, learn_logvar=self.learn_logvar, nll=nll,
            kl=kl, kl_mu=kl_mu.mean(), kl_var=kl_var.mean(), kl_obj=kl_obj,
            beta=beta, capacity=capacity,
            gan_on=gan_on, g_adv=g_adv, adv_weight=adv_weight, adaptive_weight=adaptive,
            adaptive_clamped=clamped, adv=adv, loss=loss,
        )

    def _nll(self, elementwise: Tensor) -> Tensor:
        if self.learn_logvar:
            return nll_with_learned_logvar(elementwise, self.logvar)
        return elementwise

    def _kl_objective(
        self, posterior: DiagonalGaussian, kl: Tensor, beta: float, capacity: float | None
    ) -> Tensor:
        """β·KL, with free bits per latent channel or the capacity target when configured."""
        if capacity is not None:
            return beta * (kl - capacity).abs()
        if self.free_bits > 0:
            per_channel = posterior.kl_per_channel()
            return beta * per_channel.clamp(min=self.free_bits).sum()
        return beta * kl

    def _adaptive(
        self, nll: Tensor, g_adv: Tensor, last_layer: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None]:
        """LDM's norm ratio at the decoder's last layer (and whether it hit ``adaptive_max``),
        when on and a last layer with a graph is given."""
        if not self.use_adaptive_weight or last_layer is None or not torch.is_grad_enabled():
            return None, None
        with autocast_off(g_adv):  # the norm ratio in fp32 under mixed precision
            return adaptive_weight(nll, g_adv, last_layer, self.adaptive_max)

    def _adv_weight(self, adaptive: Tensor | None, g_adv: Tensor) -> Tensor:
        """disc_weight × the adaptive ratio (when computed)."""
        if adaptive is None:
            return torch.tensor(self.disc_weight, device=g_adv.device)
        return adaptive * self.disc_weight

    def discriminator_terms(self, logits_real: Tensor, logits_fake: Tensor) -> dict[str, Tensor]:
        """D loss on real images and the *detached* reconstruction, plus logit means/accuracy."""
        d_loss = self.gan.discriminator(logits_real, logits_fake)
        acc_real, acc_fake = self.gan.accuracy(logits_real.detach(), logits_fake.detach())
        return {
            names.D_LOSS: d_loss,
            names.D_REAL: logits_real.detach().mean(),
            names.D_FAKE: logits_fake.detach().mean(),
            names.D_ACC: 0.5 * (acc_real + acc_fake),
        }
