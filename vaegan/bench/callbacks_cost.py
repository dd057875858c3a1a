"""What the diagnostics callbacks (latent, gradients, discriminator, images) add to a training
step; the budget is 3 % at the default intervals.

Three variants of the quickstart (GAN on from the first step, no validation, no progress bar)
are timed per batch through ``Trainer.fit`` in interleaved repeats:

- ``none``: ``callbacks=none`` (only the checkpoint), the baseline;
- ``default``: the default callbacks and intervals. Its ratio to ``none`` is the direct number,
  but a run shorter than the longest interval (images, every 500 steps) misses the rare work,
  and a 3 % effect is within the noise of a shared machine;
- ``scaled``: every diagnostics interval divided by ``scale``, so each piece of work runs
  ``scale`` times as often in the same mix. ``1 + (ratio_scaled - 1) / scale`` is the cost at
  the default intervals with ``scale`` times the signal: the number to hold against the budget.
  ``steps`` is raised to the longest scaled interval, so every piece of work is in the timing.

``python -m vaegan.bench.callbacks_cost [steps] [repeats]`` prints the result.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from vaegan.bench.config import bench_config
from vaegan.bench.fit import FitBench
from vaegan.bench.timing import Ratio, interleaved

DIAGNOSTICS = ("latent", "gradients", "discriminator", "images")
COMMON = (
    "gan_start=0",  # the costlier phase: adversarial term, D statistics, four gradient terms
    "++trainer.enable_progress_bar=false",
    "++callbacks.progress=null",
    "trainer.limit_val_batches=0",
)


def intervals(cfg: DictConfig) -> dict[str, int]:
    """``callbacks.<name>.<key>`` -> steps, for every interval of the diagnostics callbacks."""
    out = {}
    for name in DIAGNOSTICS:
        for key, value in (cfg.callbacks.get(name) or {}).items():
            if "every" in key and isinstance(value, int):
                out[f"callbacks.{name}.{key}"] = value
    return out


def scaled_intervals(cfg: DictConfig, scale: int) -> dict[str, int]:
    """Every diagnostics interval ``scale`` times shorter (at least every step)."""
    return {key: max(1, round(v / scale)) for key, v in intervals(cfg).items()}


def measure(
    steps: int = 100,
    repeats: int = 3,
    warmup: int = 3,
    scale: int = 10,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Seconds per step of each variant (median) and the cost ratios described above."""
    with tempfile.TemporaryDirectory(prefix="vaegan-cb-cost-") as tmp:
        root = Path(tmp)
        common = [*COMMON, *overrides]
        default = bench_config(root / "default", common)
        scaled = scaled_intervals(default, scale)
        steps = max(steps, *scaled.values())  # every piece of work fires in the timed steps
        scaled_args = [f"{key}={every}" for key, every in scaled.items()]
        configs = {
            "none": bench_config(root / "none", [*common, "callbacks=none"]),
            "default": default,
            "scaled": bench_config(root / "scaled", [*common, *scaled_args]),
        }
        datamodule = instantiate(default.data, _convert_="all")
        benches = {
            name: FitBench(cfg, datamodule, root / name, warmup, steps)
            for name, cfg in configs.items()
        }
        times = interleaved(benches, repeats)
    direct = Ratio.of(times["default"], times["none"])
    amplified = Ratio.of(times["scaled"], times["none"])
    return {
        "steps": steps,
        "repeats": repeats,
        "scale": scale,
        "intervals": intervals(default),
        "seconds_per_step": {name: statistics.median(t) for name, t in times.items()},
        "ratio_default": direct.ratio,
        "ratio_default_range": (direct.low, direct.high),
        "ratio_scaled": amplified.ratio,
        "ratio": 1 + (amplified.ratio - 1) / scale,
        "ratio_range": (1 + (amplified.low - 1) / scale, 1 + (amplified.high - 1) / scale),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = [int(a) for a in (sys.argv[1:] if argv is None else argv)]
    result = measure(*args)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"callbacks add {100 * (result['ratio'] - 1):.1f} % per step at default intervals")


if __name__ == "__main__":
    main()
