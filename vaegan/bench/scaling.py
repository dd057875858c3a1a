"""Row 5: time per batch against batch size and image size: the cost curve and its bends.

Every point is ``VAEGAN.training_step`` (GAN on) under ``Trainer.fit`` on a fixed batch, all
points interleaved. The detail column gives the cost per image-pixel relative to the first
point of its curve: flat means linear scaling; falling means fixed per-batch costs being
amortised; rising means the step got memory-bound (caches, allocator) at that size.
"""

from __future__ import annotations

import statistics

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.table import Row, milliseconds
from vaegan.bench.timing import interleaved


def measure(ctx: Context) -> list[Row]:
    profile = ctx.profile
    base_size = int(ctx.config().data.image_size)
    curves = {  # (batch size, image size) points
        "batch size": [(batch, base_size) for batch in profile.batch_sizes],
        "image size": [(profile.image_batch, size) for size in profile.image_sizes],
    }
    points = list(dict.fromkeys(point for curve in curves.values() for point in curve))
    fits = {
        (batch, size): ctx.compute_fit(GAN_ON, f"data.batch_size={batch}",
                                       f"data.image_size={size}")
        for batch, size in points
    }
    seconds = {point: statistics.median(times)
               for point, times in interleaved(fits, profile.repeats).items()}
    rows = []
    for curve, curve_points in curves.items():
        batch0, size0 = curve_points[0]
        unit0 = seconds[curve_points[0]] / (batch0 * size0**2)
        for batch, size in curve_points:
            per_pixel = seconds[(batch, size)] / (batch * size**2)
            rows.append(
                Row(
                    "5", f"scaling over {curve}: batch {batch} at {size} px",
                    f"{milliseconds(seconds[(batch, size)])} per batch",
                    f"{per_pixel / unit0:.2f}× the cost per image-pixel of batch {batch0} at "
                    f"{size0} px; {seconds[(batch, size)] / batch * 1e3:.1f} ms per image",
                    value=seconds[(batch, size)],
                )
            )
    return rows
