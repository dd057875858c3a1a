"""The callback hooks the module calls beyond Lightning's own.

Lightning has no hook between a loss's forward and its backward; gradient attribution (one
backward per loss term) and the adaptive-weight statistics need the generator's terms while
their graphs are alive, and val/rfid needs each validation reconstruction. A callback takes
part by defining the method (``GeneratorOutputHook``, ``ValidationReconstructionHook``); the
module calls it on every callback that does, in the trainer's callback order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from torch import Tensor

if TYPE_CHECKING:
    from vaegan.losses.objective import GeneratorTerms
    from vaegan.models.distributions import DiagonalGaussian


@dataclass(frozen=True)
class GeneratorOutput:
    """One batch's generator forward: the images, their reconstructions, the posterior and the
    objective's terms (``terms.parts`` with their graphs alive)."""

    x: Tensor
    xrec: Tensor
    posterior: DiagonalGaussian
    terms: GeneratorTerms


@runtime_checkable
class GeneratorOutputHook(Protocol):
    def on_generator_output(self, trainer: Any, module: Any, out: GeneratorOutput) -> None:
        """Every training batch, after the generator's forward and before its backward.
        ``out.terms.parts`` still hold their graphs; do not call backward on ``terms.loss``."""


@runtime_checkable
class ValidationReconstructionHook(Protocol):
    def on_validation_reconstruction(
        self, trainer: Any, module: Any, images: Tensor, reconstructions: Tensor
    ) -> None:
        """Every validation batch: the images and their reconstructions, both in [0, 1]."""


def callbacks_with(trainer: Any, hook: type) -> list[Any]:
    """The trainer's callbacks that implement ``hook`` (a Protocol above)."""
    if trainer is None:
        return []
    return [cb for cb in trainer.callbacks if isinstance(cb, hook)]
