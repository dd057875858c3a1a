"""The two players' Adam optimizers and their LR warm-up, from the ``optim`` config section."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vaegan.vocab.checks import require


def _finite_positive(key: str, value: float | None, rule: str, allowed: str) -> None:
    if value is not None:
        require(isinstance(value, (int, float)) and value > 0 and math.isfinite(value),
                key, value, rule, allowed)


@dataclass
class OptimConfig:
    """Adam settings for both players (LDM: lr 4.5e-6 × batch, betas (0.5, 0.9))."""

    lr: float = 2e-4
    disc_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = None
    disc_grad_clip: float | None = None
    accumulate: int = 1
    fused: bool = False  # torch's fused Adam kernel (CUDA, CPU): the same update in fewer kernels

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        for key in ("lr", "disc_lr"):
            _finite_positive(f"optim.{key}", getattr(self, key), "be a finite number > 0",
                             "e.g. 2e-4 (disc_lr: null = lr)")
        for key in ("grad_clip", "disc_grad_clip"):
            _finite_positive(f"optim.{key}", getattr(self, key), "be a finite max gradient "
                             "norm > 0", "null (no clipping) or a number > 0")
        require(len(self.betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1
                                             for b in self.betas),
                "optim.betas", list(self.betas), "be two numbers in [0, 1) (Adam's moment decays)",
                "e.g. [0.5, 0.9]")
        require(self.accumulate >= 1, "optim.accumulate", self.accumulate, "be >= 1")
        require(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "be >= 0")

    def adam(self, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=lr, betas=self.betas, weight_decay=self.weight_decay,
                                fused=self.fused)

    def warmup(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Linear LR warm-up over ``warmup_steps`` optimizer steps, as a Lightning scheduler."""
        steps = self.warmup_steps

        def factor(step: int) -> float:
            return min(1.0, (step + 1) / steps) if steps else 1.0

        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor),
                "interval": "step"}
