"""What the module's ``train/d_real``, ``train/d_fake``, ``train/d_acc`` and
``train/adaptive_weight`` leave out (claim W1).

- ``train/adaptive_clamp_hits``: a running count of generator steps on which LDM's adaptive GAN
  weight hit its clamp (``loss.objective.adaptive_max``). With ``rec_reduction: sum`` the ratio
  ‖∇rec‖/‖∇adv‖ scales with the pixel count and sits at the clamp, so the adversarial weight is
  no longer adaptive; a warning says so once.
- ``train/d_acc_real`` / ``train/d_acc_fake``: D's accuracy on each side separately (``d_acc``
  is their mean, which hides a D that only wins on fakes).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.func import functional_call

from vaegan.callbacks.diagnostic import Diagnostic
from vaegan.callbacks.emit import log_scalars
from vaegan.core.hooks import GeneratorOutput
from vaegan.loggers.once import warn_once
from vaegan.vocab import metric_names as metric


@torch.no_grad()
def logits_without_side_effects(discriminator: nn.Module, images: Tensor) -> Tensor:
    """D's logits exactly as its own step will compute them (same weights, same BatchNorm batch
    statistics), without advancing its running statistics."""
    state = {**dict(discriminator.named_parameters()),
             **{k: b.clone() for k, b in discriminator.named_buffers()}}
    return functional_call(discriminator, state, (images,))


class DiscriminatorStats(Diagnostic):
    """Clamp hits counted every step on the device (no sync); logged every ``every_n_steps``."""

    name = "discriminator"

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = self.interval("every_n_steps", every_n_steps)
        self.clamp_hits: Tensor | float = 0.0

    def on_generator_output(self, trainer: L.Trainer, pl_module: Any, out: GeneratorOutput) -> None:
        terms, step = out.terms, pl_module.gen_step
        clamped = terms.logs.get(metric.ADAPTIVE_CLAMPED)
        if clamped is not None:
            self.clamp_hits = clamped + self.clamp_hits
        if metric.ADV not in terms.parts or not self.due(pl_module, self.every_n_steps):
            return
        real = logits_without_side_effects(pl_module.discriminator, out.x)
        fake = logits_without_side_effects(pl_module.discriminator, out.xrec.detach())
        acc_real, acc_fake = pl_module.objective.gan.accuracy(real, fake)
        metrics = {
            metric.TRAIN_ADAPTIVE_CLAMP_HITS: self.clamp_hits,
            metric.TRAIN_D_ACC_REAL: acc_real,
            metric.TRAIN_D_ACC_FAKE: acc_fake,
        }
        row = log_scalars(trainer, metrics, step)
        if row and row[metric.TRAIN_ADAPTIVE_CLAMP_HITS] > 0:
            self._warn_clamp(pl_module, row[metric.TRAIN_ADAPTIVE_CLAMP_HITS])

    @staticmethod
    def _warn_clamp(pl_module: Any, hits: float) -> None:
        objective = pl_module.objective
        hint = (" loss.objective.rec_reduction=sum scales the reconstruction gradient with the"
                " pixel count; use rec_reduction=mean or lower disc_weight."
                if objective.rec_reduction == "sum" else "")
        warn_once("adaptive-clamp", (
            f"the adaptive GAN weight hit its clamp (loss.objective.adaptive_max="
            f"{objective.adaptive_max:g}) on {hits:.0f} generator steps so far: the adversarial"
            f" weight is pinned, not adaptive.{hint} See {metric.TRAIN_ADAPTIVE_CLAMP_HITS}."))

    def state_dict(self) -> dict[str, float]:
        return {"adaptive_clamp_hits": float(self.clamp_hits)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clamp_hits = float(state_dict.get("adaptive_clamp_hits", 0.0))
