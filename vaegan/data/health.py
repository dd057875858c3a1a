"""How many unreadable images a run skipped (``data.on_bad_image=skip``), said once at the end.

The data set warns once per file as it skips it; this adds the total, so a folder of millions
with a few thousand broken files is visible in the run's log, not only in scrolled-away warnings.
Counted in the main process: with ``data.num_workers > 0`` each worker keeps its own record,
so there only the per-file warnings (printed by the workers) are complete.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("vaegan")


def skipped_images(datamodule: Any) -> int:
    """Files skipped by the train and validation sets (0 for data sets that never skip)."""
    skipped: set = set()
    for name in ("train_set", "val_set"):
        skipped |= set(getattr(getattr(datamodule, name, None), "skipped_files", ()))
    if skipped:
        example = sorted(skipped)[0]
        log.warning("skipped %d unreadable images (e.g. %s)", len(skipped), example)
    return len(skipped)
