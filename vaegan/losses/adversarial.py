"""GAN losses on discriminator logits and LDM's adaptive adversarial weight.

Each flavour is a (generator, discriminator) pair of functions, picked once when the
objective is built (as LDM's ``contperceptual.py`` picks ``hinge_d_loss``/``vanilla_d_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from vaegan.vocab.checks import choice


class GanLoss(NamedTuple):
    """What each player minimises: ``generator(D(x̂))``, ``discriminator(D(x), D(x̂))``; and
    ``boundary``, the logit D's loss separates real from fake at (its decision boundary)."""

    generator: Callable[[Tensor], Tensor]
    discriminator: Callable[[Tensor, Tensor], Tensor]
    boundary: float

    def accuracy(self, logits_real: Tensor, logits_fake: Tensor) -> tuple[Tensor, Tensor]:
        """The share of real logits above the boundary and of fake ones below it."""
        return ((logits_real > self.boundary).float().mean(),
                (logits_fake < self.boundary).float().mean())


def hinge_g(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()  # LDM's generator term


def hinge_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_g(logits_fake: Tensor) -> Tensor:
    return F.softplus(-logits_fake).mean()  # non-saturating −log σ(D(x̂))


def vanilla_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def lsgan_g(logits_fake: Tensor) -> Tensor:
    return (logits_fake - 1.0).pow(2).mean()


def lsgan_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * ((logits_real - 1.0).pow(2).mean() + logits_fake.pow(2).mean())


GAN_LOSSES = {  # hinge's margins ±1 and vanilla's sigmoid both split at 0; LSGAN's targets 1, 0
    "hinge": GanLoss(hinge_g, hinge_d, boundary=0.0),
    "vanilla": GanLoss(vanilla_g, vanilla_d, boundary=0.0),
    "lsgan": GanLoss(lsgan_g, lsgan_d, boundary=0.5),
}


def gan_loss(kind: str) -> GanLoss:
    return GAN_LOSSES[choice("loss.objective.adv_loss", kind, GAN_LOSSES)]


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
