"""Section 5: time per batch against batch size and image size: the cost curve and its bends.

Every point is ``VAEGAN.training_step`` (GAN on) under ``Trainer.fit`` on a fixed batch, all
points interleaved. The detail column gives the cost per image-pixel relative to the first
point of its curve: flat means linear scaling; falling means fixed per-batch costs being
amortised; rising means the step got memory-bound (caches, allocator) at that size.
"""

from __future__ import annotations

import statistics

from vaegan.bench.context import GAN_ON, Context
from vaegan.bench.table import Row, ms
from vaegan.bench.timing import interleaved


def scaling(ctx: Context) -> list[Row]:
    p = ctx.profile
    base_size = int(ctx.config().data.image_size)
    curves = {
        "batch size": [(b, base_size) for b in p.batch_sizes],
        "image size": [(p.image_batch, s) for s in p.image_sizes],
    }
    points = list(dict.fromkeys(pt for curve in curves.values() for pt in curve))
    fits = {
        pt: ctx.compute_fit(GAN_ON, f"data.batch_size={pt[0]}", f"data.image_size={pt[1]}")
        for pt in points
    }
    times = {pt: statistics.median(t) for pt, t in interleaved(fits, p.repeats).items()}
    rows = []
    for curve, pts in curves.items():
        batch0, size0 = pts[0]
        unit0 = times[pts[0]] / (batch0 * size0**2)
        for batch, size in pts:
            per_pixel = times[(batch, size)] / (batch * size**2)
            rows.append(
                Row(
                    "5", f"scaling over {curve}: batch {batch} at {size} px",
                    f"{ms(times[(batch, size)])} per batch",
                    f"{per_pixel / unit0:.2f}× the cost per image-pixel of batch {batch0} at "
                    f"{size0} px; {times[(batch, size)] / batch * 1e3:.1f} ms per image",
                    value=times[(batch, size)],
                )
            )
    return rows
