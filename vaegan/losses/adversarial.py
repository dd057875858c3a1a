"""GAN losses on discriminator logits and LDM's adaptive adversarial weight."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ADV_LOSSES = ("hinge", "vanilla", "lsgan")


def _check(kind: str) -> None:
    if kind not in ADV_LOSSES:
        raise ValueError(f"loss.objective.adv_loss={kind!r} is unknown; allowed: {ADV_LOSSES}")


def generator_adv_loss(logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    """What the generator minimises. Hinge uses −E[D(x̂)] as in LDM; vanilla is the
    non-saturating −log σ(D(x̂)); lsgan is E[(D(x̂) − 1)²]."""
    _check(kind)
    if kind == "hinge":
        return -logits_fake.mean()
    if kind == "vanilla":
        return F.softplus(-logits_fake).mean()
    return (logits_fake - 1.0).pow(2).mean()


def discriminator_loss(logits_real: Tensor, logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    """½(E[loss on real] + E[loss on fake]) for each GAN flavour."""
    _check(kind)
    if kind == "hinge":
        real, fake = F.relu(1.0 - logits_real).mean(), F.relu(1.0 + logits_fake).mean()
    elif kind == "vanilla":
        real, fake = F.softplus(-logits_real).mean(), F.softplus(logits_fake).mean()
    else:
        real, fake = (logits_real - 1.0).pow(2).mean(), logits_fake.pow(2).mean()
    return 0.5 * (real + fake)


def adaptive_weight(
    rec_loss: Tensor, adv_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4
) -> tuple[Tensor, Tensor]:
    """‖∇_last rec‖ / (‖∇_last adv‖ + 1e-4), clamped to [0, max_weight] and detached (LDM).

    Balances the two terms at the decoder's last layer. Returns the weight and whether it hit
    the clamp (as a 0/1 tensor, so no host sync); a non-finite ratio (zero or NaN gradients)
    gives 0 so one bad step cannot turn the adversarial term into NaN.
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    raw = rec_grad.float().norm() / (adv_grad.float().norm() + 1e-4)
    raw = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    weight = raw.clamp(0.0, max_weight).detach()
    return weight, (raw >= max_weight).float()
