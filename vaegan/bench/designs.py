"""Section 3: vaegan's one-forward step vs latent-diffusion's two-forward step, per phase."""

from __future__ import annotations

from vaegan.bench.context import GAN_OFF, GAN_ON, Context
from vaegan.bench.steps import STEPS
from vaegan.bench.table import Row, Target, ratio_row
from vaegan.bench.timing import Ratio, interleaved

PHASES = (
    ("GAN on", GAN_ON, Target(1.3, at_most=False)),
    ("GAN off (before `gan_start`)", GAN_OFF, Target(1.8, at_most=False)),
)


def designs(ctx: Context) -> list[Row]:
    rows = []
    for label, phase, target in PHASES:
        cfg = ctx.config(phase)
        loops = {name: ctx.synthetic_loop(cfg, step) for name, step in STEPS.items()}
        times = interleaved(loops, ctx.profile.repeats)
        rows.append(
            ratio_row(
                "3", f"one forward vs two, {label}: reference / vaegan time per batch "
                "(speed-up)",
                Ratio.of(times["reference"], times["vaegan"]), target,
            )
        )
    return rows
