"""Pixel reconstruction losses and the reduction that sets their scale (claim F2).

Both are picked once when the objective is built: ``pixel_loss(kind)`` and ``reduction(kind)``
return the function the step then calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vaegan.vocab.checks import choice


def l1(x: Tensor, xrec: Tensor) -> Tensor:
    return (x - xrec).abs()


def l2(x: Tensor, xrec: Tensor) -> Tensor:
    return (x - xrec).pow(2)


def sum_per_sample(elementwise: Tensor) -> Tensor:
    """Summed over pixels, averaged over the batch: LDM's scale (~1e4 at 256 px)."""
    return elementwise.flatten(1).sum(dim=1).mean()


def mean_per_element(elementwise: Tensor) -> Tensor:
    """Averaged over every element: O(1), so β means what it says."""
    return elementwise.mean()


PIXEL_LOSSES = {"l1": l1, "l2": l2}
REDUCTIONS = {"sum": sum_per_sample, "mean": mean_per_element}


def pixel_loss(kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Elementwise |x − x̂| or (x − x̂)²; reduced later so the perceptual term can join first."""
    return PIXEL_LOSSES[choice("loss.objective.rec_kind", kind, PIXEL_LOSSES)]


def reduction(kind: str) -> Callable[[Tensor], Tensor]:
    return REDUCTIONS[choice("loss.objective.rec_reduction", kind, REDUCTIONS)]


def nll_with_learned_logvar(rec: Tensor, logvar: Tensor) -> Tensor:
    """Gaussian/Laplace-style NLL with one learned output log-variance: rec·e^(−s) + s.

    ``s`` is a trainable scalar in the generator optimizer, so it converges to log of the
    reconstruction error level (unlike LDM, where it is created but never optimised).
    """
    return rec / torch.exp(logvar) + logvar
