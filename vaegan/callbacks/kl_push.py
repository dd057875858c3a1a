"""The KL push: which loss term moves KL, and which way.

At β ≈ 1e-6 KL's own gradient is ~1e-5 of the encoder's: KL is a passive readout of what the
other terms do to μ and σ. A gradient *norm* or *share* cannot say whether a term pushes KL up
or down; the first-order change of KL along that term's step can. For a term L_T (weighted, as
it enters the loss) and the encoder's parameters φ (everything upstream of the posterior)::

    kl_push_T     = −⟨∇_φ KL, P ∇_φ L_T⟩      P = 1/(√v̂ + ε), Adam's current preconditioner
    kl_push_sgd_T = −⟨∇_φ KL, ∇_φ L_T⟩

in nats per unit learning rate: a step of size lr along T alone changes the batch's KL by
≈ lr · kl_push_T. The μ² and variance parts of KL get the same (``kl_push_mu``,
``kl_push_var``; they add up to ``kl_push``). Linear in L_T, so the terms' pushes sum to the
whole loss's. Before the optimizer's first step (no v̂ yet) P is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vaegan.vocab.metric_names import KL_PUSH, KL_PUSH_MU, KL_PUSH_SGD, KL_PUSH_VAR

Grads = Sequence[Tensor | None]


def adam_preconditioner(
    optimizer: torch.optim.Optimizer | None, params: Sequence[nn.Parameter]
) -> list[Tensor | None]:
    """1/(√v̂ + ε) per parameter from Adam's state; None (identity) where it has none yet."""
    if optimizer is None:
        return [None] * len(params)
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    out: list[Tensor | None] = []
    for param in params:
        state, group = optimizer.state.get(param, {}), group_of.get(id(param))
        if group is None or "exp_avg_sq" not in state:
            out.append(None)
            continue
        step = float(state["step"])
        v_hat = state["exp_avg_sq"] / (1.0 - group["betas"][1] ** step)
        out.append(1.0 / (v_hat.sqrt() + group["eps"]))
    return out


def _dot(a: Grads, b: Grads) -> Tensor | None:
    """Σ_p ⟨a_p, b_p⟩ over the parameters both reach (None: nothing in common)."""
    total = None
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            continue
        value = (x.detach().float() * y.detach().float()).sum()
        total = value if total is None else total + value
    return total


def kl_push(
    kl_parts: tuple[Grads, Grads], term: Grads, preconditioner: Sequence[Tensor | None]
) -> dict[str, Tensor]:
    """``kl_push``, ``kl_push_mu``, ``kl_push_var`` and ``kl_push_sgd`` of one term, from the
    encoder gradients of KL's μ² part, its variance part and the term."""
    mu, var = kl_parts
    device = next((g.device for g in term if g is not None), torch.device("cpu"))

    def minus(value: Tensor | None) -> Tensor:
        return torch.zeros((), device=device) if value is None else -value

    step = [g if p is None or g is None else p * g  # the term's preconditioned step, once
            for p, g in zip(preconditioner, term, strict=True)]
    push_mu, push_var = minus(_dot(mu, step)), minus(_dot(var, step))
    sgd = minus(_dot(mu, term)) + minus(_dot(var, term))
    return {KL_PUSH: push_mu + push_var, KL_PUSH_MU: push_mu, KL_PUSH_VAR: push_var,
            KL_PUSH_SGD: sgd}
