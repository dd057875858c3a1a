"""The always-on CSV logger, continuing the run dir's metrics.csv instead of deleting it.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, so a requeued job
resuming in its own run dir (``ckpt_path=last``) would erase the curve up to the pre-emption.
This one puts the file back and adopts its header, so new rows are appended (the file is
rewritten with a wider header only when a new metric appears). Rows logged after the
checkpoint by a run that then crashed are logged again by the resumed run; readers average
such duplicates.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from vaegan.vocab.layout import METRICS_FILE


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that appends to an existing ``metrics.csv``; ``save`` fsyncs it (called
    before every checkpoint is written: the rows it skips on resume must be on disk)."""

    @rank_zero_only
    def save(self) -> None:
        super().save()
        path = Path(self.log_dir) / METRICS_FILE
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())

    @property
    def experiment(self) -> Any:
        if self._experiment is not None or rank_zero_only.rank != 0:
            return super().experiment
        path = Path(self.log_dir) / METRICS_FILE
        previous = path.read_text() if path.is_file() else None
        with warnings.catch_warnings():  # "... will be deleted": not here
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = super().experiment  # deletes metrics.csv
        if previous:
            path.write_text(previous)
            writer.metrics_keys = list(next(csv.reader(io.StringIO(previous)), []))
        return writer
