"""Which loss term moves which network: the measurement behind claims G2, G4 and G5.

Every ``every_n_steps`` generator steps, each weighted loss term in ``out.parts`` (rec,
perceptual, kl, adv) is differentiated on its own with ``torch.autograd.grad`` with respect to
the encoder's parameters, the decoder's parameters and the posterior's μ and log σ². Logged
per term: the L2 norms ``grad/<term>/{encoder,decoder,mu,logvar}``, ``grad/<term>/encoder_share``
= enc / (enc + dec) and ``grad/<term>/share`` = this term's encoder norm over the sum of all
terms' encoder norms. ``autograd.grad`` returns gradients instead of accumulating them into
``.grad``, so training is bit-for-bit the same with the callback on or off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from vaegan.callbacks.emit import due, log_scalars
from vaegan.losses.objective import GeneratorTerms
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.models.distributions import DiagonalGaussian

_EPS = 1e-30


def _norm(grads: Sequence[Tensor | None], like: Tensor) -> Tensor:
    """L2 norm over a group of gradients; parameters a term does not reach count as zero."""
    present = [g.detach().float().norm() for g in grads if g is not None]
    return torch.stack(present).norm() if present else torch.zeros((), device=like.device)


def term_gradient_norms(
    autoencoder: AutoencoderKL, posterior: DiagonalGaussian, parts: dict[str, Tensor]
) -> dict[str, Tensor]:
    """``grad/<term>/...`` norms and shares for every part that has a graph."""
    encoder: list[nn.Parameter] = [p for p in autoencoder.encoder_parameters() if p.requires_grad]
    decoder: list[nn.Parameter] = [p for p in autoencoder.decoder_parameters() if p.requires_grad]
    inputs = [*encoder, *decoder, posterior.mean, posterior.logvar]
    ne, nd = len(encoder), len(decoder)
    out: dict[str, Tensor] = {}
    enc_norms: dict[str, Tensor] = {}
    for term, part in parts.items():
        if not part.requires_grad:
            continue
        grads = torch.autograd.grad(part, inputs, retain_graph=True, allow_unused=True)
        enc, dec = _norm(grads[:ne], part), _norm(grads[ne : ne + nd], part)
        out[f"grad/{term}/encoder"] = enc
        out[f"grad/{term}/decoder"] = dec
        out[f"grad/{term}/mu"] = _norm(grads[-2:-1], part)
        out[f"grad/{term}/logvar"] = _norm(grads[-1:], part)
        out[f"grad/{term}/encoder_share"] = enc / (enc + dec).clamp_min(_EPS)
        enc_norms[term] = enc
    if enc_norms:
        total = torch.stack(list(enc_norms.values())).sum().clamp_min(_EPS)
        out.update({f"grad/{term}/share": enc / total for term, enc in enc_norms.items()})
    return out


class GradientAttribution(L.Callback):
    """Per-term gradient norms every ``every_n_steps`` generator steps (four extra backward
    passes at that step, none on the others)."""

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ValueError(f"callbacks.gradients.every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps

    def on_generator_output(
        self, trainer: L.Trainer, pl_module: Any, x: Tensor, xrec: Tensor,
        posterior: DiagonalGaussian, terms: GeneratorTerms,
    ) -> None:
        step = pl_module.gen_step
        if not due(step, self.every_n_steps) or not torch.is_grad_enabled():
            return
        norms = term_gradient_norms(pl_module.autoencoder, posterior, terms.parts)
        if norms:
            log_scalars(trainer, norms, step)
