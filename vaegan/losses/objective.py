"""The VAE-GAN objective: data in, terms out.

Generator loss (one autoencoder forward per batch)::

    r      = |x − x̂| (or squared) + w_p · LPIPS(x, x̂)        elementwise, LPIPS broadcast
    nll    = reduce(r · e^(−s) + s)  if the output log-variance s is learned, else reduce(r)
    kl     = E_batch Σ_dims ½(μ² + σ² − 1 − log σ²)          (free bits: Σ_c max(kl_c, λ))
    kl_obj = β · kl                 or  β · |kl − C(t)|      for the capacity schedule
    adv    = λ_adv · L_G(D(x̂)),  λ_adv = adaptive · disc_weight · factor(t)
    loss   = nll + kl_obj + adv

``reduce`` is ``sum`` (per sample, LDM's scale) or ``mean`` (per element). Every term is
returned unweighted and weighted; ``parts`` holds the weighted pieces that make up
the autoencoder's gradient (with their graphs; the output log-variance's own ``+ s`` has
none) so gradient attribution can take each one apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vaegan.core.precision import autocast_off, fp32_posterior
from vaegan.losses.adversarial import (
    adaptive_weight,
    discriminator_loss,
    generator_adv_loss,
)
from vaegan.losses.perceptual import Perceptual
from vaegan.losses.reconstruction import (
    nll_with_learned_logvar,
    pixel_loss,
    reduce_per_sample,
)
from vaegan.models.distributions import DiagonalGaussian


@dataclass
class GeneratorOutput:
    """``loss`` to backpropagate, ``parts`` (weighted, with graph) and ``logs`` (detached)."""

    loss: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)
    logs: dict[str, Tensor] = field(default_factory=dict)


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
        for key, value in {
            "perceptual_weight": perceptual_weight,
            "free_bits": free_bits,
            "disc_weight": disc_weight,
            "adaptive_max": adaptive_max,
        }.items():
            if value < 0:
                raise ValueError(f"loss.objective.{key}={value} must be >= 0")
        pixel_loss(torch.zeros(1), torch.zeros(1), rec_kind)  # validates the names early
        reduce_per_sample(torch.zeros(1, 1), rec_reduction)
        generator_adv_loss(torch.zeros(1), adv_loss)
        self.rec_kind = rec_kind
        self.rec_reduction = rec_reduction
        self.perceptual_weight = perceptual_weight
        self.perceptual = Perceptual(**(perceptual or {})) if perceptual_weight > 0 else None
        self.learn_logvar = learn_logvar
        self.logvar = nn.Parameter(torch.tensor(float(logvar_init)), requires_grad=learn_logvar)
        self.free_bits = free_bits
        self.adv_loss = adv_loss
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
    ) -> GeneratorOutput:
        """All generator terms for one batch; ``logits_fake`` is None while the GAN is off."""
        pixel = pixel_loss(x, xrec, self.rec_kind)
        rec = reduce_per_sample(pixel, self.rec_reduction)
        elementwise = pixel
        parts: dict[str, Tensor] = {}
        logs: dict[str, Tensor] = {"rec": rec, "rec_per_pixel": pixel.mean()}
        p_part = None
        if self.perceptual is not None:
            p_loss = self.perceptual(x, xrec)  # [B, 1, 1, 1]
            logs["perceptual"] = p_loss.mean()
            p_elem = self.perceptual_weight * p_loss.expand_as(pixel)
            elementwise = pixel + p_elem
            p_part = reduce_per_sample(p_elem, self.rec_reduction)
        nll = reduce_per_sample(self._nll(elementwise), self.rec_reduction)
        scale = torch.exp(-self.logvar) if self.learn_logvar else 1.0
        parts["rec"] = scale * rec
        if p_part is not None:
            parts["perceptual"] = scale * p_part
            logs["perceptual_weighted"] = p_part
        logs["nll"] = nll
        logs["logvar"] = self.logvar

        with autocast_off(x):  # KL in fp32 under mixed precision (see vaegan.core.precision)
            posterior = fp32_posterior(posterior)
            kl = posterior.kl().mean()
            mu_part, var_part = posterior.kl_parts()
            kl_obj = self._kl_objective(posterior, kl, beta, capacity)
        parts["kl"] = kl_obj
        logs.update(kl=kl, kl_mu=mu_part.mean(), kl_var=var_part.mean(), kl_weighted=kl_obj)
        logs["beta"] = torch.tensor(float(beta))
        if capacity is not None:
            logs["capacity"] = torch.tensor(float(capacity))

        loss = nll + kl_obj
        if logits_fake is not None:
            g_adv = generator_adv_loss(logits_fake.float(), self.adv_loss)
            weight = self._adv_weight(nll, g_adv, last_layer, logs) * adv_factor
            parts["adv"] = weight * g_adv
            loss = loss + parts["adv"]
            logs.update(g_adv=g_adv, g_adv_weighted=parts["adv"], adv_weight=weight)
        else:
            logs.update(g_adv=torch.zeros(()), adv_weight=torch.zeros(()))
        logs["loss"] = loss
        return GeneratorOutput(loss, parts, {k: v.detach() for k, v in logs.items()})

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

    def _adv_weight(
        self, nll: Tensor, g_adv: Tensor, last_layer: Tensor | None, logs: dict[str, Tensor]
    ) -> Tensor:
        """disc_weight × (adaptive ratio, when on and a last layer with a graph is given)."""
        if not self.use_adaptive_weight or last_layer is None or not torch.is_grad_enabled():
            return torch.tensor(self.disc_weight, device=g_adv.device)
        with autocast_off(g_adv):  # the norm ratio in fp32 under mixed precision
            ratio, clamped = adaptive_weight(nll, g_adv, last_layer, self.adaptive_max)
        logs.update(adaptive_weight=ratio, adaptive_clamped=clamped)
        return ratio * self.disc_weight

    def discriminator_terms(self, logits_real: Tensor, logits_fake: Tensor) -> dict[str, Tensor]:
        """D loss on real images and the *detached* reconstruction, plus logit means/accuracy."""
        d_loss = discriminator_loss(logits_real, logits_fake, self.adv_loss)
        acc = 0.5 * ((logits_real > 0).float().mean() + (logits_fake < 0).float().mean())
        return {
            "d_loss": d_loss,
            "d_real": logits_real.detach().mean(),
            "d_fake": logits_fake.detach().mean(),
            "d_acc": acc.detach(),
        }
