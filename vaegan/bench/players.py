"""The two players, their losses and optimizers, outside Lightning.

Taken from a module built by ``vaegan.train.build_module`` and its ``configure_optimizers``,
so the plain loop (row 1's baseline) and the memory anatomy use exactly the networks,
objective, Adam settings and LR schedules that ``Trainer.fit`` trains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from vaegan.core.module import VAEGAN
from vaegan.core.schedules import BetaSchedule, GanSchedule
from vaegan.losses.objective import VAEGANObjective
from vaegan.models.autoencoder import AutoencoderKL
from vaegan.train import build_module


@dataclass
class Players:
    ae: AutoencoderKL
    disc: nn.Module
    objective: VAEGANObjective
    beta: BetaSchedule
    gan: GanSchedule
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler

    @contextmanager
    def toggled(self, opt: torch.optim.Optimizer) -> Iterator[None]:
        """Lightning's ``toggle_optimizer``: freeze every parameter the other optimizer owns."""
        other = self.opt_d if opt is self.opt_g else self.opt_g
        frozen = [p for g in other.param_groups for p in g["params"] if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def step(self, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler) -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()


def players_of(module: VAEGAN) -> Players:
    """The module's networks, objective and schedules, with fresh optimizers."""
    (opt_g, opt_d), scheds = module.configure_optimizers()
    return Players(
        ae=module.autoencoder,
        disc=module.discriminator,
        objective=module.objective,
        beta=module.beta_schedule,
        gan=module.gan_schedule,
        opt_g=opt_g,
        opt_d=opt_d,
        sched_g=scheds[0]["scheduler"],
        sched_d=scheds[1]["scheduler"],
    )


def build_players(
    cfg: DictConfig, device: torch.device, prepare: Callable[[VAEGAN], None] | None = None
) -> Players:
    """Fresh players (seeded) on ``device``, in training mode; ``prepare`` changes the module
    first (``model_changes``)."""
    torch.manual_seed(int(cfg.seed))
    module = build_module(cfg).to(device).train()
    if prepare is not None:
        prepare(module)
    return players_of(module)


def synthetic_batch(cfg: DictConfig, device: torch.device) -> Tensor:
    """A fixed batch in [-1, 1] of the configured shape: compute-only timings need no loader."""
    gen = torch.Generator().manual_seed(0)
    size, batch = int(cfg.data.image_size), int(cfg.data.batch_size)
    return (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
