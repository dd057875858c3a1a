"""Pixel reconstruction losses and the reduction that sets their scale (claim F2)."""

from __future__ import annotations

import torch
from torch import Tensor

PIXEL_LOSSES = ("l1", "l2")
REDUCTIONS = ("sum", "mean")


def pixel_loss(x: Tensor, xrec: Tensor, kind: str = "l1") -> Tensor:
    """Elementwise |x − x̂| or (x − x̂)²; reduced later so the perceptual term can join first."""
    if kind == "l1":
        return (x - xrec).abs()
    if kind == "l2":
        return (x - xrec).pow(2)
    raise ValueError(f"loss.objective.rec_kind={kind!r} is unknown; allowed: {PIXEL_LOSSES}")


def reduce_per_sample(elementwise: Tensor, reduction: str) -> Tensor:
    """``sum``: summed over pixels, averaged over the batch (LDM's scale, ~1e4 at 256 px);
    ``mean``: averaged over every element (O(1), so β means what it says)."""
    if reduction == "sum":
        return elementwise.flatten(1).sum(dim=1).mean()
    if reduction == "mean":
        return elementwise.mean()
    raise ValueError(
        f"loss.objective.rec_reduction={reduction!r} is unknown; allowed: {REDUCTIONS}"
    )


def nll_with_learned_logvar(rec: Tensor, logvar: Tensor) -> Tensor:
    """Gaussian/Laplace-style NLL with one learned output log-variance: rec·e^(−s) + s.

    ``s`` is a trainable scalar in the generator optimizer, so it converges to log of the
    reconstruction error level (unlike LDM, where it is created but never optimised).
    """
    return rec / torch.exp(logvar) + logvar
