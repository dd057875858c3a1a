"""Row 2: what the diagnostics callbacks (latent, gradients, discriminator, images) add to a
training step; the budget is 3 % at the default intervals.

Three variants (GAN on from the first step, no validation, no progress bar) are timed per
batch through ``Trainer.fit`` in interleaved repeats:

- ``none``: ``callbacks=none`` (only the checkpoint), the baseline;
- ``default``: the default callbacks and intervals. Its ratio to ``none`` is the direct number,
  but a run shorter than the longest interval (images, every 500 steps) misses the rare work,
  and a 3 % effect is within the noise of a shared machine;
- ``scaled``: every diagnostics interval divided by ``SCALE``, so each piece of work runs
  ``SCALE`` times as often in the same mix. ``1 + (ratio_scaled - 1) / SCALE`` is the cost at
  the default intervals with ``SCALE`` times the signal: the number held against the budget.
  The timed batches are raised to the longest scaled interval, so every piece of work is in.
"""

from __future__ import annotations

from omegaconf import DictConfig

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.table import Row, Target
from vaegan.bench.timing import Ratio, interleaved

DIAGNOSTICS = ("latent", "gradients", "discriminator", "images")
SCALE = 10
COMMON = (
    GAN_ON,  # the costlier phase: adversarial term, D statistics, four gradient terms
    "++trainer.enable_progress_bar=false",
    "++callbacks.progress=null",
    "trainer.limit_val_batches=0",
)


def intervals(cfg: DictConfig) -> dict[str, int]:
    """``callbacks.<name>.<key>`` -> steps, for every interval of the diagnostics callbacks."""
    found = {}
    for name in DIAGNOSTICS:
        for key, value in (cfg.callbacks.get(name) or {}).items():
            if "every" in key and isinstance(value, int):
                found[f"callbacks.{name}.{key}"] = value
    return found


def measure(ctx: Context) -> list[Row]:
    default = ctx.config(*COMMON)
    scaled = {key: max(1, round(every / SCALE)) for key, every in intervals(default).items()}
    configs = {
        "none": ctx.config(*COMMON, "callbacks=none"),
        "default": default,
        "scaled": ctx.config(*COMMON, *(f"{key}={every}" for key, every in scaled.items())),
    }
    steps = max(ctx.profile.steps, *scaled.values())  # every piece of work fires in the timing
    benches = {name: ctx.fit_bench(cfg, ctx.datamodule(cfg), steps=steps)
               for name, cfg in configs.items()}
    times = interleaved(benches, ctx.profile.long_repeats)
    direct = Ratio.of(times["default"], times["none"])
    amplified = Ratio.of(times["scaled"], times["none"])

    def at_default(ratio: float) -> float:
        return 1 + (ratio - 1) / SCALE

    cost = at_default(amplified.ratio)
    return [
        Row(
            "2", f"diagnostics cost at the default intervals: `callbacks=default` / "
            f"`callbacks=none` (`Trainer.fit`), from every interval ÷ {SCALE}",
            f"{cost:.2f}× [{at_default(amplified.low):.2f}–{at_default(amplified.high):.2f}]",
            f"÷ {SCALE}: {amplified.ratio:.2f}×; at the default intervals directly: "
            f"{direct.ratio:.2f}× [{direct.low:.2f}–{direct.high:.2f}]; {steps} batches × "
            f"{ctx.profile.long_repeats} repeats",
            Target(1.03, at_most=True), cost,
        )
    ]
