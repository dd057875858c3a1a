"""Loss-weight schedules as pure functions of the *generator* step.

Lightning's ``global_step`` counts every optimizer step (generator and
discriminator), so it doubles once the GAN is on; every schedule here takes the
module's own generator-step counter instead, which is checkpointed with the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from vaegan.vocab.checks import choice, require

BETA_SCHEDULES = ("constant", "linear", "cyclical", "sigmoid", "capacity")
GAN_KEYS = ("gan_start", "gan_ramp_steps")  # in the `schedule` section, read by GanSchedule


@dataclass(frozen=True)
class BetaSchedule:
    """β(t): the weight of the KL term at generator step ``t``; every kind peaks at ``beta``.

    - ``constant``: β from the first step.
    - ``linear``: 0 for ``warmup_steps``, then a linear ramp over ``ramp_steps`` to β
      (KL annealing, fix F1).
    - ``cyclical``: ``cycles`` cycles over ``total_steps``; in each, a linear ramp during
      the first ``ratio`` of the cycle, then β (Fu et al. 2019).
    - ``sigmoid``: β·sigmoid(``sharpness``·(t − t₀)/``ramp_steps``),
      t₀ = ``warmup_steps`` + ``ramp_steps``/2.
    - ``capacity``: β is the weight γ of γ·|KL − C(t)| with C ramping linearly from 0 to
      ``capacity_max`` over ``ramp_steps`` after ``warmup_steps`` (Burgess et al. 2018).
    """

    kind: str = "constant"
    beta: float = 1e-4
    warmup_steps: int = 0
    ramp_steps: int = 1000
    cycles: int = 4
    ratio: float = 0.5
    total_steps: int = 10000
    sharpness: float = 10.0
    capacity_max: float = 25.0

    def __post_init__(self) -> None:
        choice("schedule.kind", self.kind, BETA_SCHEDULES)
        require(math.isfinite(self.beta) and self.beta >= 0, "beta", self.beta,
                "be a finite number >= 0")
        require(self.warmup_steps >= 0, "schedule.warmup_steps", self.warmup_steps, "be >= 0")
        require(self.ramp_steps >= 1 or self.kind == "constant", "schedule.ramp_steps",
                self.ramp_steps, "be >= 1")
        if self.kind == "cyclical":
            require(1 <= self.cycles <= self.total_steps, "schedule.cycles", self.cycles,
                    f"be >= 1 and <= schedule.total_steps={self.total_steps}")
            require(0 < self.ratio <= 1, "schedule.ratio", self.ratio, "be in (0, 1]")
        require(self.capacity_max >= 0, "schedule.capacity_max", self.capacity_max, "be >= 0")

    @classmethod
    def from_section(cls, schedule: Mapping[str, Any]) -> BetaSchedule:
        """From the ``schedule`` config section (its ``gan_*`` keys belong to GanSchedule)."""
        settings = {key: value for key, value in schedule.items() if key not in GAN_KEYS}
        known = {f.name for f in fields(cls)}
        for key, value in settings.items():
            require(key in known, f"schedule.{key}", value, "be a setting of the β schedule",
                    sorted(known | set(GAN_KEYS)))
        return cls(**settings)

    def _ramp(self, step: int) -> float:
        """Fraction in [0, 1] of a linear ramp that starts after the warm-up."""
        return min(max((step - self.warmup_steps) / self.ramp_steps, 0.0), 1.0)

    def __call__(self, step: int) -> float:
        if self.kind == "constant" or self.kind == "capacity":
            return self.beta
        if self.kind == "linear":
            return self.beta * self._ramp(step)
        if self.kind == "sigmoid":
            if step < self.warmup_steps:
                return 0.0
            x = (step - self.warmup_steps - self.ramp_steps / 2) / self.ramp_steps
            return self.beta / (1.0 + math.exp(-self.sharpness * x))
        period = self.total_steps / self.cycles
        phase = (step % period) / period
        return self.beta * min(phase / self.ratio, 1.0)

    def capacity(self, step: int) -> float | None:
        """C(t) in nats for the capacity schedule, ``None`` for the others."""
        if self.kind != "capacity":
            return None
        return self.capacity_max * self._ramp(step)


@dataclass(frozen=True)
class GanSchedule:
    """The adversarial factor: 0 before ``gan_start``, then a linear ramp to 1 over ``ramp_steps``.

    While the factor is 0 the module does no discriminator work at all (see ``active``).
    """

    gan_start: int = 0
    ramp_steps: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        require(self.gan_start >= 0 and float(self.gan_start).is_integer(), "gan_start",
                self.gan_start, "be an integer >= 0 (a generator step)")
        require(self.ramp_steps >= 0, "schedule.gan_ramp_steps", self.ramp_steps, "be >= 0")
        object.__setattr__(self, "gan_start", int(self.gan_start))  # a sweeper may pass 600.0

    def active(self, step: int) -> bool:
        return self.enabled and step >= self.gan_start

    def __call__(self, step: int) -> float:
        if not self.active(step):
            return 0.0
        if self.ramp_steps == 0:
            return 1.0
        return min((step - self.gan_start + 1) / self.ramp_steps, 1.0)
