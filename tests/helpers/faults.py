"""Fault injection: NaNs where a diverging run gets them, installed only when a test asks.

``nan_injection("rec", at_step=2, count=2)`` gives the Hydra overrides that swap the loss's
objective for ``NanInjectingObjective``: the real objective, which poisons one term on some
generator steps. The module, its step and the guard are the ones users run.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vaegan.losses.objective import GeneratorTerms, VAEGANObjective

GENERATOR_TERMS = ("rec", "perceptual", "nll", "kl", "loss")  # a NaN in the term and the loss
INJECTABLE = (*GENERATOR_TERMS, "g_adv", "d_loss", "grad")


def nan_injection(term: str, at_step: int, count: int = 1) -> tuple[str, ...]:
    """Overrides: a NaN in ``term`` for ``count`` generator steps from ``at_step`` on.

    ``g_adv``: NaN discriminator logits (the adaptive weight sees them too); ``d_loss``: the
    discriminator's loss; ``grad``: NaN generator gradients under a finite loss.
    """
    assert term in INJECTABLE, term
    return (
        f"loss.objective._target_={__name__}.NanInjectingObjective",
        f"+loss.objective.inject_term={term}",
        f"+loss.objective.inject_at_step={at_step}",
        f"+loss.objective.inject_count={count}",
    )


def _nan(like: Tensor) -> Tensor:
    return torch.full((), float("nan"), device=like.device, dtype=like.dtype)


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradients are not."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return torch.full_like(grad, float("nan"))


class NanInjectingObjective(VAEGANObjective):
    """VAEGANObjective that poisons ``inject_term`` on generator steps
    ``inject_at_step .. inject_at_step + inject_count - 1`` of this process.

    The module calls ``generator_terms`` once per generator step (then, with the GAN on,
    ``discriminator_terms``), so counting the calls is the generator-step clock of a run
    started fresh.
    """

    def __init__(self, inject_term: str, inject_at_step: int, inject_count: int = 1,
                 **objective) -> None:
        super().__init__(**objective)
        self.inject_term = inject_term
        self.steps = range(inject_at_step, inject_at_step + inject_count)
        self.step = -1

    def _poisoned(self, term: str) -> bool:
        return self.inject_term == term and self.step in self.steps

    def generator_terms(self, x, xrec, posterior, beta, capacity=None, adv_factor=0.0,
                        logits_fake=None, last_layer=None) -> GeneratorTerms:
        self.step += 1
        if logits_fake is not None and self._poisoned("g_adv"):
            logits_fake = logits_fake * _nan(logits_fake)
        terms = super().generator_terms(x, xrec, posterior, beta, capacity, adv_factor,
                                        logits_fake, last_layer)
        if self._poisoned("grad"):
            terms.loss = _NanGradient.apply(terms.loss)
        elif self.inject_term in GENERATOR_TERMS and self._poisoned(self.inject_term):
            value = getattr(terms, self.inject_term)
            if value is not None:  # the NaN reaches the logged term, the loss and the grads
                setattr(terms, self.inject_term, value * _nan(value))
                terms.loss = terms.loss + _nan(terms.loss) * value
        return terms

    def discriminator_terms(self, logits_real: Tensor, logits_fake: Tensor) -> dict[str, Tensor]:
        terms = super().discriminator_terms(logits_real, logits_fake)
        if self._poisoned("d_loss"):
            terms["d_loss"] = terms["d_loss"] * _nan(terms["d_loss"])
        return terms
