"""Which loss term moves which network, and which way it moves KL (claims G2, G4, G5).

Every ``every_n_steps`` generator steps, each weighted loss term in ``out.parts`` (rec,
perceptual, kl, adv) is differentiated on its own with ``torch.autograd.grad`` with respect to
the encoder's parameters, the decoder's parameters and the posterior's μ and log σ². Logged
per term: the L2 norms ``grad/<term>/{encoder,decoder,mu,logvar}``, ``grad/<term>/encoder_share``
= enc / (enc + dec), ``grad/<term>/share`` = this term's encoder norm over the sum of all
terms' encoder norms, and the KL push ``grad/<term>/kl_push{,_mu,_var,_sgd}`` from the same
encoder gradients (vaegan/callbacks/kl_push.py; two more backward passes, for KL's two parts,
through the encoder only). ``autograd.grad`` returns gradients instead of accumulating them
into ``.grad``, so training is bit-for-bit the same with the callback on or off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from vaegan.callbacks.diagnostic import Diagnostic
from vaegan.callbacks.emit import log_scalars
from vaegan.callbacks.kl_push import adam_preconditioner
from vaegan.callbacks.kl_push import kl_push as term_kl_push
from vaegan.core.hooks import GeneratorOutput
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.models.distributions import DiagonalGaussian
from vaegan.vocab.metric_names import (
    DECODER,
    ENCODER,
    ENCODER_SHARE,
    POSTERIOR_LOGVAR,
    POSTERIOR_MU,
    SHARE,
    grad,
)

_EPS = 1e-30


def _norm(grads: Sequence[Tensor | None], like: Tensor) -> Tensor:
    """L2 norm over a group of gradients; parameters a term does not reach count as zero."""
    present = [g.detach().float().norm() for g in grads if g is not None]
    return torch.stack(present).norm() if present else torch.zeros((), device=like.device)


def encoder_parameters(autoencoder: AutoencoderKL) -> list[nn.Parameter]:
    return [p for p in autoencoder.encoder_parameters() if p.requires_grad]


def kl_part_gradients(
    encoder: Sequence[nn.Parameter], kl_mu: Tensor, kl_var: Tensor
) -> tuple[tuple[Tensor | None, ...], tuple[Tensor | None, ...]]:
    """Encoder gradients of KL's μ² part and its variance part (batch means, unweighted)."""
    def of(part: Tensor) -> tuple[Tensor | None, ...]:
        if not part.requires_grad:
            return (None,) * len(encoder)
        return torch.autograd.grad(part, list(encoder), retain_graph=True, allow_unused=True)
    return of(kl_mu), of(kl_var)


def term_gradient_norms(
    autoencoder: AutoencoderKL, posterior: DiagonalGaussian, parts: dict[str, Tensor],
    push: tuple[tuple, tuple] | None = None, preconditioner: Sequence[Tensor | None] = (),
) -> dict[str, Tensor]:
    """``grad/<term>/...`` norms and shares for every part that has a graph, and each term's
    KL push when ``push`` holds the encoder gradients of KL's two parts."""
    encoder = encoder_parameters(autoencoder)
    decoder: list[nn.Parameter] = [p for p in autoencoder.decoder_parameters() if p.requires_grad]
    inputs = [*encoder, *decoder, posterior.mean, posterior.logvar]
    ne, nd = len(encoder), len(decoder)
    preconditioner = list(preconditioner) or [None] * ne
    out: dict[str, Tensor] = {}
    enc_norms: dict[str, Tensor] = {}
    for term, part in parts.items():
        if not part.requires_grad:
            continue
        grads = torch.autograd.grad(part, inputs, retain_graph=True, allow_unused=True)
        enc, dec = _norm(grads[:ne], part), _norm(grads[ne : ne + nd], part)
        out[grad(term, ENCODER)] = enc
        out[grad(term, DECODER)] = dec
        out[grad(term, POSTERIOR_MU)] = _norm(grads[-2:-1], part)
        out[grad(term, POSTERIOR_LOGVAR)] = _norm(grads[-1:], part)
        out[grad(term, ENCODER_SHARE)] = enc / (enc + dec).clamp_min(_EPS)
        enc_norms[term] = enc
        if push is not None:
            pushes = term_kl_push(push, grads[:ne], preconditioner)
            out.update({grad(term, name): value for name, value in pushes.items()})
    if enc_norms:
        total = torch.stack(list(enc_norms.values())).sum().clamp_min(_EPS)
        out.update({grad(term, SHARE): enc / total for term, enc in enc_norms.items()})
    return out


def generator_optimizer(
    trainer: L.Trainer, params: Sequence[nn.Parameter]
) -> torch.optim.Optimizer | None:
    """The optimizer that steps the encoder (the generator's), None before it exists."""
    if not params:
        return None
    first = params[0]
    for optimizer in trainer.optimizers:
        if any(p is first for group in optimizer.param_groups for p in group["params"]):
            return optimizer
    return None


class GradientAttribution(Diagnostic):
    """Per-term gradient norms and KL pushes every ``every_n_steps`` generator steps (one extra
    backward pass per term and two for KL's parts at that step, none on the others)."""

    name = "gradients"

    def __init__(self, every_n_steps: int = 100, kl_push: bool = True) -> None:
        self.every_n_steps = self.interval("every_n_steps", every_n_steps)
        self.kl_push = kl_push

    def on_generator_output(self, trainer: L.Trainer, pl_module: Any, out: GeneratorOutput) -> None:
        if not self.due(pl_module, self.every_n_steps) or not torch.is_grad_enabled():
            return
        terms, step = out.terms, pl_module.gen_step
        push, preconditioner = None, []
        if self.kl_push:
            encoder = encoder_parameters(pl_module.autoencoder)
            push = kl_part_gradients(encoder, terms.kl_mu, terms.kl_var)
            preconditioner = adam_preconditioner(generator_optimizer(trainer, encoder), encoder)
        norms = term_gradient_norms(pl_module.autoencoder, out.posterior, terms.parts, push,
                                    preconditioner)
        if norms:
            log_scalars(trainer, norms, step)
