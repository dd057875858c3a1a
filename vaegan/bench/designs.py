"""Row 3: vaegan's one-forward step vs latent-diffusion's two-forward step, per phase.

Both sides are ``Trainer.fit`` on the same fixed batch: ``VAEGAN.training_step`` against
``LDMReference`` (``vaegan.bench.reference``, LDM's step on the same modules).

The ceiling: with ``A`` the autoencoder's forward + backward, ``a`` its forward alone and
``R`` the rest of vaegan's step (LPIPS, discriminator, adaptive weight, optimizers), the
reference costs ``A + R + a`` with the GAN on, so dropping one forward buys at most
``(A + R + a) / (A + R) < 1 + a / A ≈ 1.33`` (a backward costs about two forwards: ``A ≈ 3a``).
Before ``gan_start`` vaegan also skips the discriminator passes and the adaptive weight's
gradient calls (``D``), which the reference runs and multiplies by 0: with ``R₀ = R − D``,
``(A + R₀ + D + a) / (A + R₀) < 1 + (a + D) / A``. The targets (1.3×, 1.4×) sit at those
ceilings, not above them; ``docs/performance.md`` puts the profiled numbers in.
"""

from __future__ import annotations

from vaegan.bench.context import GAN_OFF, GAN_ON, Context
from vaegan.bench.table import Row, Target, ratio_row
from vaegan.bench.timing import Ratio, interleaved

PHASES = (
    ("GAN on", GAN_ON, Target(1.3, at_most=False)),
    ("GAN off (before `gan_start`)", GAN_OFF, Target(1.4, at_most=False)),
)


def design_ratios(ctx: Context) -> dict[str, Ratio]:
    """Per phase label: reference / vaegan seconds per batch (``.a``, ``.b``: each median)."""
    ratios = {}
    for label, phase, _ in PHASES:
        fits = {design: ctx.compute_fit(phase, design=design)
                for design in ("reference", "vaegan")}
        times = interleaved(fits, ctx.profile.repeats)
        ratios[label] = Ratio.of(times["reference"], times["vaegan"])
    return ratios


def measure(ctx: Context) -> list[Row]:
    ratios = design_ratios(ctx)
    return [
        ratio_row(
            "3", f"one forward vs two, {label}: LDM's step / `VAEGAN.training_step`, both "
            "`Trainer.fit` (speed-up)", ratios[label], target,
        )
        for label, _, target in PHASES
    ]
